import { ValidationError } from '../errors.js';

/** Lower-case SQL identifiers Tributary accepts for names it turns into tables, columns, slots. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function isValidIdentifier(name: string): boolean {
  return IDENTIFIER.test(name);
}

/** Throws a ValidationError unless `name` is a plain lower-case identifier (at most 63 bytes). */
export function assertIdentifier(name: string, what: string): string {
  if (!isValidIdentifier(name)) {
    throw new ValidationError(
      `${what} '${name}' is not a valid identifier: use lower-case letters, digits and underscores, starting with a letter or underscore, at most 63 characters.`,
      { field: what },
    );
  }
  return name;
}

/** Double-quotes an identifier for SQL. Identifiers are never taken from request input. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `schema.table` with both parts quoted. */
export function qualified(schema: string, name: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(name)}`;
}
