// CNI errors as values: each carries the spec's code so main can print the error JSON unchanged.

/** Error codes from the CNI spec (SPEC.md "Error"), plus Lightly's own from 100 on. */
export const CniCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  // Lightly-specific (>= 100)
  POOL_EXHAUSTED: 100,
  DATAPLANE_FAILURE: 101,
  CHECK_FAILED: 102,
  AGENT_UNREACHABLE: 103,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Wraps anything thrown into a CniError, keeping the spec code of ones that already are. */
export function asCniError(err: unknown, fallbackCode: number = CniCode.IO_FAILURE): CniError {
  if (err instanceof CniError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CniError(fallbackCode, message);
}
