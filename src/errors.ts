// The one error class of cmp: a stable machine-readable code and a one-line message saying what is wrong and what to do.

/** Stable error codes; scripts may match on them, so codes are never renamed. */
export type CmpErrorCode =
  | 'BAD_FLAG'
  | 'BAD_ARGUMENT'
  | 'DATASET_MISSING'
  | 'DATASET_CORRUPT'
  | 'MODEL_MISSING'
  | 'MODEL_INVALID'
  | 'RUN_INVALID'
  | 'BACKEND_UNAVAILABLE'
  | 'FRAME_INVALID'
  | 'IO'
  | 'INTERNAL';

/**
 * An error cmp expects and can explain. `message` is one line naming the bad value and the fix; lower-level errors
 * travel in `cause`.
 */
export class CmpError extends Error {
  readonly code: CmpErrorCode;

  constructor(code: CmpErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CmpError';
    this.code = code;
  }
}

/** True when `err` is a CmpError (also across duplicated module instances). */
export function isCmpError(err: unknown): err is CmpError {
  return err instanceof Error && err.name === 'CmpError' && typeof (err as { code?: unknown }).code === 'string';
}
