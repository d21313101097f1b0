// Node-only additions (`@pairgate/sdk/node`): a session file readable only by its owner (0600),
// replaced atomically on every save.

import { chmod, open, readFile, rename, unlink } from "node:fs/promises";

import { SessionError, StorageError } from "./errors.js";
import { checkSession, type Storage, type StoredSession } from "./storage.js";

export * from "./index.js";

/** A JSON session file with mode 0600, written to a temporary file and renamed into place. */
export class FileStorage implements Storage {
  constructor(readonly path: string) {}

  async load(): Promise<StoredSession | null> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new StorageError(`cannot read ${this.path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
    }
    try {
      return checkSession(JSON.parse(text));
    } catch (e) {
      throw new SessionError(`${this.path} is not a session file: ${e instanceof TypeError ? e.message : "not JSON"}`);
    }
  }

  async save(session: StoredSession): Promise<void> {
    const tmp = `${this.path}.tmp${process.pid}`;
    const fail = (e: unknown) => new StorageError(`cannot write ${this.path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
    try {
      const f = await open(tmp, "w", 0o600);
      try {
        await f.chmod(0o600); // also when the temporary file existed with other permissions
        await f.writeFile(JSON.stringify(session, null, 2));
        await f.sync();
      } finally {
        await f.close();
      }
      await rename(tmp, this.path);
      await chmod(this.path, 0o600);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw fail(e);
    }
  }
}
