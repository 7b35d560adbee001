/**
 * Tracing: the spans of one call, as the core records them (`options.trace`), and the page's
 * check of a trace a worker sends.
 *
 * A trace is OpenTelemetry's OTLP/JSON `ExportTraceServiceRequest`: one resource
 * (`service.name` = `nestbox`), one scope (`nestbox`), and its spans root first — the export
 * call (`call <export>`), then a span per capability call (`capability <module>.<name>`), per
 * data guest HTTP request (`http_request`) and per WASI call (`wasi <function>`), each with
 * its arguments summarised, its result or errno, the fuel it cost and its start and end in
 * Unix nanoseconds (decimal strings, as OTLP/JSON encodes 64-bit integers). A trace past its
 * span limit keeps its first spans and marks the root `nestbox.trace.truncated` (with
 * `nestbox.trace.dropped_spans`). Send it to any OTLP/HTTP collector as it is
 * (`POST /v1/traces`, `Content-Type: application/json`).
 *
 * @module
 */

import type { CoreSpan, CoreTrace, CoreTraceAttribute } from './nestbox.js';
import { TRACE_SPANS } from './constants.js';

/** A call's trace (OTLP/JSON). */
export type Trace = CoreTrace;
/** One span of a {@link Trace}. */
export type Span = CoreSpan;
/** One attribute of a {@link Span}. */
export type SpanAttribute = CoreTraceAttribute;

/** Spans a trace keeps with `trace: true`. */
export const DEFAULT_TRACE_SPANS: number = TRACE_SPANS.default;
/** The most spans a trace can be asked to keep (`trace: { maxSpans }`). */
export const MAX_TRACE_SPANS: number = TRACE_SPANS.max;

const MAX_NAME = 300;
const MAX_ATTRIBUTES = 32;
const MAX_STRING = 256;

type Dict = Record<string, unknown>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function attributeProblem(value: unknown): string | undefined {
  if (!isDict(value) || typeof value['key'] !== 'string' || value['key'].length > 64) return 'a malformed attribute';
  const v = value['value'];
  if (!isDict(v) || Object.keys(v).length !== 1) return `attribute ${value['key']}: malformed value`;
  if ('stringValue' in v) {
    return typeof v['stringValue'] === 'string' && v['stringValue'].length <= MAX_STRING
      ? undefined
      : `attribute ${value['key']}: malformed string`;
  }
  if ('intValue' in v) {
    return typeof v['intValue'] === 'string' && /^-?\d{1,19}$/.test(v['intValue'])
      ? undefined
      : `attribute ${value['key']}: malformed integer`;
  }
  if ('boolValue' in v) {
    return typeof v['boolValue'] === 'boolean' ? undefined : `attribute ${value['key']}: malformed boolean`;
  }
  return `attribute ${value['key']}: unknown value type`;
}

const UNIX_NANOS = /^\d{1,20}$/;

function spanProblem(span: unknown, index: number, traceId: string, ids: Set<string>): string | undefined {
  if (!isDict(span)) return `span ${index} is not an object`;
  const { spanId, parentSpanId, name, kind, startTimeUnixNano, endTimeUnixNano, attributes, status } = span;
  if (span['traceId'] !== traceId) return `span ${index} has another trace id`;
  if (typeof spanId !== 'string' || !/^[0-9a-f]{16}$/.test(spanId) || /^0+$/.test(spanId)) {
    return `span ${index} has a malformed span id`;
  }
  if (ids.has(spanId)) return `span ${index} repeats a span id`;
  if (index === 0 ? parentSpanId !== '' : typeof parentSpanId !== 'string' || !ids.has(parentSpanId)) {
    return `span ${index}'s parent is not an earlier span`;
  }
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME)
    return `span ${index} has a malformed name`;
  if (kind !== (index === 0 ? 1 : 3)) return `span ${index} has kind ${String(kind)}`;
  if (
    typeof startTimeUnixNano !== 'string' ||
    typeof endTimeUnixNano !== 'string' ||
    !UNIX_NANOS.test(startTimeUnixNano) ||
    !UNIX_NANOS.test(endTimeUnixNano) ||
    BigInt(endTimeUnixNano) < BigInt(startTimeUnixNano)
  ) {
    return `span ${index} has malformed times`;
  }
  if (!Array.isArray(attributes) || attributes.length > MAX_ATTRIBUTES) return `span ${index} has malformed attributes`;
  for (const attribute of attributes) {
    const problem = attributeProblem(attribute);
    if (problem !== undefined) return `span ${index}: ${problem}`;
  }
  if (
    !isDict(status) ||
    !(status['code'] === 1 || status['code'] === 2) ||
    (status['message'] !== undefined && typeof status['message'] !== 'string')
  ) {
    return `span ${index} has a malformed status`;
  }
  ids.add(spanId);
  return undefined;
}

/**
 * What is wrong with `value` as the trace of a call of `exportName` that kept at most
 * `maxSpans` spans; `undefined` when it is one. The page checks every trace a worker sends
 * with it (a worker that sends a malformed one is replaced).
 */
export function traceProblem(value: unknown, exportName: string, maxSpans: number): string | undefined {
  if (!isDict(value) || !Array.isArray(value['resourceSpans']) || value['resourceSpans'].length !== 1) {
    return 'a trace that is not one resource';
  }
  const resource: unknown = value['resourceSpans'][0];
  if (!isDict(resource) || !isDict(resource['resource']) || !Array.isArray(resource['scopeSpans'])) {
    return 'a trace with a malformed resource';
  }
  const scopes = resource['scopeSpans'] as unknown[];
  if (scopes.length !== 1 || !isDict(scopes[0]) || !Array.isArray(scopes[0]['spans'])) {
    return 'a trace that is not one scope of spans';
  }
  const spans = scopes[0]['spans'] as unknown[];
  if (spans.length === 0 || spans.length > maxSpans) return `a trace of ${spans.length} spans (at most ${maxSpans})`;
  const root = spans[0];
  if (!isDict(root) || typeof root['traceId'] !== 'string' || !/^[0-9a-f]{32}$/.test(root['traceId'])) {
    return 'a trace with a malformed trace id';
  }
  if (/^0+$/.test(root['traceId'])) return 'a trace with a zero trace id';
  if (root['name'] !== `call ${exportName}`) return `a trace whose root is not the call of ${exportName}`;
  const ids = new Set<string>();
  for (const [index, span] of spans.entries()) {
    const problem = spanProblem(span, index, root['traceId'], ids);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** The spans whose parent is `span` (by span id), in order. */
export function childSpans(trace: Trace, span: Span): Span[] {
  return (trace.resourceSpans[0]?.scopeSpans[0]?.spans ?? []).filter((s) => s.parentSpanId === span.spanId);
}

/** The spans of a trace, root first. */
export function spansOf(trace: Trace): Span[] {
  return trace.resourceSpans[0]?.scopeSpans[0]?.spans ?? [];
}

/** The value of a span's attribute `key` (an `intValue` as a number), or `undefined`. */
export function spanAttribute(span: Span, key: string): string | number | boolean | undefined {
  const attribute = span.attributes.find((a) => a.key === key);
  if (attribute === undefined) return undefined;
  const v = attribute.value;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  return v.boolValue;
}
