import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DOC_PATH, OUT_PATH, generate, typeOf } from './openapi-types.mjs';

describe('the generated API types', () => {
  it('match what the checked-in /openapi.json gives (run `cargo xtask ui-types` when not)', () => {
    const doc = JSON.parse(readFileSync(DOC_PATH, 'utf8'));
    expect(readFileSync(OUT_PATH, 'utf8')).toBe(generate(doc));
  });

  it('name every component schema of the document', () => {
    const doc = JSON.parse(readFileSync(DOC_PATH, 'utf8'));
    const text = readFileSync(OUT_PATH, 'utf8');
    for (const name of Object.keys(doc.components.schemas)) {
      expect(text).toContain(`export type ${name.replace(/[^A-Za-z0-9_$]/g, '_')} =`);
    }
  });
});

describe('schema translation', () => {
  it('spells nullable, optional, enum, array, map and reference schemas', () => {
    const schema = {
      type: 'object',
      required: ['key', 'tags'],
      properties: {
        key: { type: 'string' },
        tags: { type: 'array', items: { $ref: '#/components/schemas/Tag' } },
        title: { type: ['string', 'null'] },
        class: { type: 'string', enum: ['done', 'failed'] },
        counts: { type: 'object', additionalProperties: { type: 'integer' } },
        either: { oneOf: [{ $ref: '#/components/schemas/A' }, { type: 'null' }] },
      },
    };
    expect(typeOf(schema)).toBe(
      [
        '{',
        '  key: string;',
        '  tags: Tag[];',
        '  title?: string | null;',
        "  class?: 'done' | 'failed';",
        '  counts?: Record<string, number>;',
        '  either?: A | null;',
        '}',
      ].join('\n'),
    );
  });

  it('refuses what it cannot spell rather than guessing', () => {
    expect(() => typeOf({ $ref: 'other.json#/X' })).toThrow(/unsupported \$ref/);
    expect(() => typeOf({ type: 'file' })).toThrow(/unsupported schema type/);
  });
});
