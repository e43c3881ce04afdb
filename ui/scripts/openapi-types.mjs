// Turns the server's OpenAPI document (ui/src/openapi/openapi.json, written by
// `cargo xtask ui-types`) into TypeScript types for the cockpit (ui/src/openapi/schema.gen.ts).
//
//   node scripts/openapi-types.mjs [--check]
//
// Every schema under `components.schemas` becomes an exported type of the same name, and
// `Operations` maps each operation id to its success body, so a wire change on the
// server shows up as a type error in the views that read it. `--check` writes nothing and
// exits 1 when the checked-in file differs from what the document gives.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const DOC_PATH = join(here, '..', 'src', 'openapi', 'openapi.json');
export const OUT_PATH = join(here, '..', 'src', 'openapi', 'schema.gen.ts');

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The type name a `$ref` points at. */
function refName(ref) {
  const prefix = '#/components/schemas/';
  if (!ref.startsWith(prefix)) throw new Error(`unsupported $ref ${ref}`);
  return safeName(ref.slice(prefix.length));
}

/** A component name as a TypeScript identifier (`a.b` and `a-b` become `a_b`). */
function safeName(name) {
  const id = name.replace(/[^A-Za-z0-9_$]/g, '_');
  return IDENT.test(id) ? id : `_${id}`;
}

function literal(value) {
  return typeof value === 'string' ? `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : JSON.stringify(value);
}

function propertyKey(key) {
  return IDENT.test(key) ? key : literal(key);
}

function union(parts) {
  const unique = [...new Set(parts)];
  if (unique.includes('unknown')) return 'unknown';
  return unique.length === 0 ? 'never' : unique.join(' | ');
}

function comment(text, indent) {
  if (!text) return '';
  const lines = String(text).trim().replace(/\*\//g, '* /').split('\n');
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? ` ${l}` : ''}`).join('\n')}\n${indent} */\n`;
}

/** The TypeScript for one schema, at nesting `depth` (for indentation). */
export function typeOf(schema, depth = 0) {
  if (schema === true || schema === undefined || schema === null) return 'unknown';
  if (schema === false) return 'never';
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return literal(schema.const);
  if (schema.enum) {
    const parts = schema.enum.map((v) => (v === null ? 'null' : literal(v)));
    return union(parts);
  }
  if (schema.oneOf || schema.anyOf) {
    const members = (schema.oneOf ?? schema.anyOf).map((s) => typeOf(s, depth));
    return union(members.map((m) => (m.includes(' | ') || m.includes(' & ') ? `(${m})` : m)));
  }
  if (schema.allOf) {
    const members = schema.allOf.map((s) => typeOf(s, depth));
    if (members.length === 1) return members[0];
    return members.map((m) => (m.includes(' | ') ? `(${m})` : m)).join(' & ');
  }
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length === 0) {
    if (schema.properties || schema.additionalProperties) return objectType(schema, depth);
    if (schema.items) return arrayType(schema, depth);
    return 'unknown';
  }
  return union(
    types.map((t) => {
      switch (t) {
        case 'null':
          return 'null';
        case 'string':
          return 'string';
        case 'integer':
        case 'number':
          return 'number';
        case 'boolean':
          return 'boolean';
        case 'array':
          return arrayType(schema, depth);
        case 'object':
          return objectType(schema, depth);
        default:
          throw new Error(`unsupported schema type ${t}`);
      }
    }),
  );
}

function arrayType(schema, depth) {
  const item = typeOf(schema.items, depth);
  return /^[A-Za-z0-9_$]+$/.test(item) ? `${item}[]` : `Array<${item}>`;
}

function objectType(schema, depth) {
  const props = Object.entries(schema.properties ?? {});
  const extra = schema.additionalProperties;
  if (props.length === 0) {
    if (extra === undefined || extra === true) return 'Record<string, unknown>';
    if (extra === false) return 'Record<string, never>';
    return `Record<string, ${typeOf(extra, depth)}>`;
  }
  const required = new Set(schema.required ?? []);
  const indent = '  '.repeat(depth + 1);
  const lines = props.map(([key, value]) => {
    const optional = required.has(key) ? '' : '?';
    return `${comment(value.description, indent)}${indent}${propertyKey(key)}${optional}: ${typeOf(value, depth + 1)};`;
  });
  if (extra && extra !== true) lines.push(`${indent}[key: string]: ${typeOf(extra, depth + 1)} | undefined;`);
  return `{\n${lines.join('\n')}\n${'  '.repeat(depth)}}`;
}

/** The success body of an operation, or `null` when it has none in JSON. */
function successBody(operation) {
  const entries = Object.entries(operation.responses ?? {}).filter(([status]) => /^2\d\d$/.test(status));
  const bodies = entries
    .map(([, response]) => response.content?.['application/json']?.schema)
    .filter((s) => s !== undefined)
    .map((s) => typeOf(s, 1));
  return bodies.length === 0 ? null : union(bodies);
}

/** The whole generated module for `doc`. */
export function generate(doc) {
  const out = [
    '// Generated from the server\'s /openapi.json by ui/scripts/openapi-types.mjs',
    '// (`cargo xtask ui-types`). Do not edit: a test fails when this file is stale.',
    '',
  ];
  const schemas = doc.components?.schemas ?? {};
  for (const name of Object.keys(schemas).sort()) {
    const schema = schemas[name];
    out.push(`${comment(schema.description, '')}export type ${safeName(name)} = ${typeOf(schema)};`, '');
  }
  const operations = [];
  for (const [path, item] of Object.entries(doc.paths ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    for (const method of ['get', 'put', 'post', 'patch', 'delete']) {
      const op = item[method];
      if (!op?.operationId) continue;
      const body = successBody(op);
      operations.push(
        `${comment(`${method.toUpperCase()} ${path}`, '  ')}  ${propertyKey(op.operationId)}: ${body ?? 'void'};`,
      );
    }
  }
  out.push('/** Each operation\'s success body, by operation id. */');
  out.push(`export interface Operations {\n${operations.join('\n')}\n}`, '');
  return out.join('\n');
}

function main() {
  const check = process.argv.includes('--check');
  const doc = JSON.parse(readFileSync(DOC_PATH, 'utf8'));
  const text = generate(doc);
  if (check) {
    let current = '';
    try {
      current = readFileSync(OUT_PATH, 'utf8');
    } catch {
      // a missing file is stale
    }
    if (current !== text) {
      console.error(`${OUT_PATH} is stale: run \`cargo xtask ui-types\``);
      process.exit(1);
    }
    console.log(`${OUT_PATH} is up to date`);
    return;
  }
  writeFileSync(OUT_PATH, text);
  console.log(`wrote ${OUT_PATH}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
