// A mistake by the user (bad flag, bad config, unreadable file): the CLI prints its message on one line and
// exits 1, without a stack trace. Anything else that escapes is a bug and keeps its trace.
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}
