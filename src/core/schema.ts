// Checks a whole document against its format's valibot schema and turns the first problem into one line naming the
// field path (layers[2].weights); every reader of a cmp format goes through here.

import * as v from 'valibot';

/** Any valibot schema a format is described with (synchronous: no format needs I/O to check). */
export type FormatSchema = v.GenericSchema;

/** How a problem is shown: `quote: false` (a file a user named, which may hold anything) never echoes a value or key. */
export interface IssueOptions {
  quote?: boolean;
}

/** `layers[2].weights` for the path of an issue (or a prefix of it); empty at the top of the document. */
export function issuePath(path: readonly v.IssuePathItem[] | undefined): string {
  let out = '';
  for (const item of path ?? []) {
    const key = (item as { key: unknown }).key;
    out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  }
  return out;
}

/** A received value, short enough for one line; only its kind when values must not be quoted. */
function shown(value: unknown, quote: boolean): string {
  if (!quote) return value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value}`;
  let json: string;
  try {
    json = JSON.stringify(value) ?? typeof value;
  } catch {
    json = typeof value; // a BigInt or a cycle, which IPC's structured clone can carry
  }
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

/** The problem of one issue as words after "has": `no layers[0].name`, `samples 0, expected >=1`, ... */
export function describeIssue(issue: v.BaseIssue<unknown>, options: IssueOptions = {}): string {
  const quote = options.quote ?? true;
  const path = issuePath(issue.path);
  // A strict object's key it does not know is an issue whose expected value is `never`.
  if (issue.type === 'strict_object' && issue.expected === 'never') {
    if (quote) return `unknown field "${path}"`;
    return `an unknown field in ${issuePath(issue.path?.slice(0, -1)) || 'its top level'}`;
  }
  const wanted =
    issue.type === 'regex' || issue.type === 'check'
      ? issue.message // the schema's own words: v.regex(/^[^\n]*$/, 'one line')
      : issue.type.endsWith('_length')
        ? `length ${issue.expected}`
        : issue.expected === 'Object'
          ? 'an object'
          : issue.expected === 'Array'
            ? 'a list'
            : issue.expected;
  const expected = `, expected ${wanted ?? issue.type.replace(/_/g, ' ')}`;
  if (!path) return `a top level that is ${shown(issue.input, quote)}${expected}`;
  if (issue.input === undefined) return `no ${path}`;
  return `${path} ${shown(issue.input, quote)}${expected}`;
}

/**
 * Returns `value` as the schema's type when the whole document fits, else throws what `bad` makes of the first
 * problem (one line naming its field).
 */
export function checkDocument<S extends FormatSchema>(
  schema: S,
  value: unknown,
  bad: (problem: string) => Error,
  options: IssueOptions = {},
): v.InferOutput<S> {
  const result = v.safeParse(schema, value, { abortEarly: true });
  if (result.success) return value;
  throw bad(describeIssue(result.issues[0], options));
}
