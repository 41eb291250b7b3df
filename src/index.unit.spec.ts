import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.dirname(fileURLToPath(import.meta.url));

const ENTRIES = ['index.ts', 'testing/index.ts', 'client/index.ts'];
// One program for every entry: building it is most of the cost.
const program = ts.createProgram(
  ENTRIES.map((entry) => path.join(root, entry)),
  {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: [],
  },
);

/** Every name an entry point exports, marked as a value (runtime) or a type only. */
function exportedNames(entry: string): string[] {
  const file = path.join(root, entry);
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
  return checker
    .getExportsOfModule(module)
    .map((symbol) => {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      return `${target.flags & ts.SymbolFlags.Value ? 'value' : 'type '} ${symbol.name}`;
    })
    .sort((a, b) => a.slice(6).localeCompare(b.slice(6)));
}

// The public surface, as a snapshot: a change to what users can import shows up in review.
describe('public surface', { timeout: 60_000 }, () => {
  it('of `tributary`', () => {
    expect(exportedNames('index.ts').join('\n')).toMatchSnapshot();
  });
  it('of `tributary/testing`', () => {
    expect(exportedNames('testing/index.ts').join('\n')).toMatchSnapshot();
  });
  it('of `tributary/client`', () => {
    expect(exportedNames('client/index.ts').join('\n')).toMatchSnapshot();
  });
});
