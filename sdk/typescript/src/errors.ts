// The SDK's errors. Messages never contain tokens, proofs, pairing secrets or key material.

/** Base class of every error the SDK throws itself (network failures surface as `fetch` throws them). */
export class PairgateError extends Error {
  override name = "PairgateError";
}

/** The gateway refused a request; `code` is its stable error code (protocol §6). */
export class GatewayError extends PairgateError {
  override name = "GatewayError";
  constructor(
    /** HTTP status. */
    readonly status: number,
    /** The OAuth `error` or OpenAI `error.code` value, e.g. `invalid_grant`, `grant_revoked`. */
    readonly code: string,
    /** The gateway's description, safe to show. */
    readonly description: string,
  ) {
    super(`the gateway refused the request (${status}): ${code}${description ? `: ${description}` : ""}`);
  }

  /** Builds the error from a gateway answer of either shape (OAuth or OpenAI). */
  static fromBody(status: number, text: string): GatewayError {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      v = undefined;
    }
    const body = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
    const error = body.error;
    if (typeof error === "string") {
      const d = body.error_description;
      return new GatewayError(status, error, typeof d === "string" ? d : "");
    }
    if (typeof error === "object" && error !== null) {
      const e = error as Record<string, unknown>;
      return new GatewayError(status, typeof e.code === "string" ? e.code : "error", typeof e.message === "string" ? e.message : "");
    }
    return new GatewayError(status, "error", `unexpected answer of ${text.length} bytes`);
  }
}

/** Why a pairing string was refused (protocol §3, parsing steps). */
export type PairingStringProblem = "too_long" | "wrong_prefix" | "malformed" | "bad_checksum" | "bad_url";

const PAIRING_MESSAGES: Record<PairingStringProblem, string> = {
  too_long: "pairing string is too long",
  wrong_prefix: "not a pairing string (expected the pgpair1. prefix)",
  malformed: "pairing string is malformed",
  bad_checksum: "pairing string checksum mismatch (was it copied completely?)",
  bad_url: "pairing string contains an invalid gateway URL",
};

/** Not a valid pairing string. The message never echoes the input. */
export class PairingStringError extends PairgateError {
  override name = "PairingStringError";
  constructor(readonly problem: PairingStringProblem) {
    super(`not a valid pairing string: ${PAIRING_MESSAGES[problem]}`);
  }
}

/** Reading or writing the session failed. */
export class StorageError extends PairgateError {
  override name = "StorageError";
}

/** The session (stored or received) cannot be used, or the gateway answered something unexpected. */
export class SessionError extends PairgateError {
  override name = "SessionError";
}

/** The owner denied the consent request. */
export class ConsentDeniedError extends PairgateError {
  override name = "ConsentDeniedError";
  constructor() {
    super("the consent request was denied by the owner");
  }
}

/** The consent request expired before the owner decided. */
export class ConsentExpiredError extends PairgateError {
  override name = "ConsentExpiredError";
  constructor() {
    super("the consent request expired before the owner decided");
  }
}
