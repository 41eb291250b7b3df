/** A PostgreSQL log sequence number in its text form, e.g. `0/16B3748`. */
export type Lsn = string;

/** The LSN as a 64-bit integer, for comparing and subtracting. */
export function lsnToBigInt(lsn: Lsn): bigint {
  const [high, low] = lsn.split('/');
  if (high === undefined || low === undefined) throw new Error(`Not an LSN: '${lsn}'`);
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

export function bigIntToLsn(value: bigint): Lsn {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function compareLsn(a: Lsn, b: Lsn): number {
  const x = lsnToBigInt(a);
  const y = lsnToBigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Zero-padded, so that ids built from it sort like the LSNs themselves. */
export function lsnKey(lsn: Lsn): string {
  return lsnToBigInt(lsn).toString(16).padStart(16, '0');
}
