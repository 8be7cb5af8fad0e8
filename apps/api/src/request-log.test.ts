import { describe, expect, it } from 'vitest';
import { redactQuery } from './request-log.js';

describe('redactQuery', () => {
  it('keeps the path and the query keys, not their values', () => {
    expect(redactQuery('/v1/chat?api_key=sk-1&x=2')).toBe('/v1/chat?api_key=[Redacted]&x=[Redacted]');
  });

  it('redacts a bare query token whole, and leaves a URL without a query alone', () => {
    expect(redactQuery('/v1/models?sk-live-1')).toBe('/v1/models?[Redacted]');
    expect(redactQuery('/v1/models')).toBe('/v1/models');
    expect(redactQuery('/v1/models?')).toBe('/v1/models?');
  });
});
