/** A problem with one place in an input file, precise enough for a person to fix it. */
export interface CorpusIssue {
  file: string;
  /** 1-based line where the offending record starts; 0 when the whole file is at fault. */
  line: number;
  message: string;
}

export function formatIssue(issue: CorpusIssue): string {
  return issue.line > 0 ? `${issue.file}:${issue.line}: ${issue.message}` : `${issue.file}: ${issue.message}`;
}

/** Thrown for unreadable or invalid corpus input; `message` names the file and line. */
export class CorpusError extends Error {
  readonly file: string;
  readonly line: number;
  readonly reason: string;

  constructor(issue: CorpusIssue) {
    super(formatIssue(issue));
    this.name = 'CorpusError';
    this.file = issue.file;
    this.line = issue.line;
    this.reason = issue.message;
  }
}
