// The layering of DESIGN.md held by a test: no import circle between files, no folder importing a folder
// above it, and no function over 80 lines outside bench/, emulator/ and the tests.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..', '..');

/** Lower numbers sit lower; a folder may import its own layer or any below it. */
const LAYERS: Readonly<Record<string, number>> = {
  twins: 1,
  inventory: 2,
  events: 2,
  workflows: 3,
  activities: 3,
  ingest: 4,
  operations: 4,
  access: 4,
  functions: 5,
  forwarders: 5,
  api: 6,
  mqtt: 6,
  worker: 7,
};

/** Adapters of one layer translate for different transports and do not reach into each other. */
const ADAPTERS = new Set(['api', 'mqtt']);
/** The one exception: the external broker's HTTP auth hooks (api/) apply MQTT's topic rules. */
const ALLOWED = new Set(['api/south/mqtt-hooks.routes.ts -> mqtt/topics.ts']);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(rel));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

const FILES = Object.keys(LAYERS).flatMap(sourceFiles);

/**
 * The project files a file imports (relative specifiers only), as paths from the root. `import type` is left
 * out: it is gone once compiled, so it can neither run in a circle nor pull a layer in at run time.
 */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const specs: string[] = [];
  for (const node of src.statements) {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly)
      specs.push((node.moduleSpecifier as ts.StringLiteral).text);
    if (ts.isExportDeclaration(node) && node.moduleSpecifier && !node.isTypeOnly)
      specs.push((node.moduleSpecifier as ts.StringLiteral).text);
  }
  return specs
    .filter((spec) => spec.startsWith('.'))
    .flatMap((spec) => {
      const base = path.join(path.dirname(file), spec);
      const hit = [`${base}.ts`, path.join(base, 'index.ts')].find((c) => fs.existsSync(path.join(ROOT, c)));
      return hit ? [hit] : [];
    });
}

const GRAPH = new Map(FILES.map((f) => [f, importsOf(f)]));
const folderOf = (file: string) => file.split(path.sep)[0]!;

/** Strongly connected components of more than one file (Tarjan). */
function circles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

function longFunctions(file: string, limit: number): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const first = src.getLineAndCharacterOfPosition(n.getStart()).line;
      const last = src.getLineAndCharacterOfPosition(n.getEnd()).line;
      if (last - first + 1 > limit) found.push(`${file}:${first + 1} (${last - first + 1} lines)`);
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return found;
}

describe('the architecture', () => {
  it('reads the source folders it checks', () => {
    expect(FILES.length).toBeGreaterThan(50);
    expect(GRAPH.get(path.join('worker', 'main.ts'))?.length).toBeGreaterThan(3);
  });

  it('has no import circle between files', () => {
    expect(circles(GRAPH)).toEqual([]);
  });

  it('finds a circle when there is one', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(circles(graph)).toEqual([['a', 'b', 'c']]);
  });

  it('has no folder importing a folder above it, nor one adapter importing another', () => {
    const wrong: string[] = [];
    for (const [file, targets] of GRAPH) {
      const from = folderOf(file);
      for (const target of targets) {
        const to = folderOf(target);
        const edge = `${file} -> ${target}`.split(path.sep).join('/');
        const upward = (LAYERS[to] ?? 0) > LAYERS[from]!;
        const sideways = from !== to && ADAPTERS.has(from) && ADAPTERS.has(to);
        if ((upward || sideways) && !ALLOWED.has(edge)) wrong.push(edge);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no function over 80 lines outside bench/, emulator/ and the tests', () => {
    expect(FILES.flatMap((f) => longFunctions(f, 80))).toEqual([]);
  });
});
