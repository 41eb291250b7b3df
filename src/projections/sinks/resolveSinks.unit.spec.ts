import { describe, expect, it } from 'vitest';
import config from '../../../examples/tributary.config.js';
import { ConfigError } from '../../errors.js';
import { defineView } from '../view.js';
import { resolveSinks } from './resolveSinks.js';
import type { SinksConfig } from './types.js';

const products = defineView({
  name: 'products',
  columns: { id: { type: 'integer' }, name: { type: 'text' }, price: { type: 'numeric' } },
  primaryKey: ['id'],
  search: { fields: ['name'] },
});

function refusal(sinks: unknown): ConfigError {
  try {
    resolveSinks(sinks as SinksConfig, [products]);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('accepted');
}

describe('resolveSinks', () => {
  it('fills in the defaults: the view search fields, weights, english, a snake_case index', () => {
    const [sink] = resolveSinks({ productSearch: { view: 'products', backend: { kind: 'postgres' } } }, [
      products,
    ]);
    expect(sink).toMatchObject({
      name: 'productSearch',
      alias: 'product_search',
      language: 'english',
      fuzzy: true,
    });
    expect(sink!.fields).toEqual([
      {
        name: 'name',
        weight: 'A',
        searchable: true,
        facet: false,
        filter: false,
        mapping: undefined,
        columnType: 'text',
      },
    ]);
  });

  it('refuses what cannot run, at start, saying what to fix', () => {
    const unknownView = refusal({ s: { view: 'prodcts', backend: { kind: 'postgres' } } });
    expect(unknownView.message).toMatch(/view 'prodcts' is not a view/);
    expect(unknownView.hint).toMatch(/products/);
    expect(
      refusal({ s: { view: 'products', backend: { kind: 'postgres' }, fields: ['nmae'] } }).message,
    ).toMatch(/field 'nmae' is not a column of view 'products'/);
    const noUrl = refusal({ s: { view: 'products', backend: { kind: 'elasticsearch', url: undefined } } });
    expect(noUrl.message).toMatch(/backend.url must be an http\(s\) URL/);
    expect(noUrl.hint).toMatch(/process\.env/);
    expect(refusal({ s: { view: 'products', backend: { kind: 'solr' } } }).message).toMatch(
      /backend.kind must be one of/,
    );
    expect(
      refusal({ s: { view: 'products', backend: { kind: 'typesense', url: 'http://x:8108' } } }).message,
    ).toMatch(/apiKey is missing/);
    expect(
      refusal({ s: { view: 'products', backend: { kind: 'postgres' }, language: "english'; drop" } }).message,
    ).toMatch(/not a text search configuration name/);
    expect(
      refusal({
        a: { view: 'products', backend: { kind: 'postgres' } },
        b: { view: 'products', backend: { kind: 'postgres' } },
      }).message,
    ).toMatch(/would both serve search/);
  });

  it('resolves the demo configuration', () => {
    const views = (config.projections ?? []).flatMap((projection) => projection.views);
    expect(resolveSinks(config.sinks, views).map((sink) => [sink.name, sink.view.name, sink.alias])).toEqual([
      ['productSearch', 'products', 'product_search'],
    ]);
  });
});
