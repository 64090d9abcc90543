// RFC 4180 CSV: comma-separated, fields may be double-quoted ("" is a quote inside), quoted fields may hold
// commas and newlines; CRLF or LF line ends; a UTF-8 BOM is dropped. Rows come with their 1-based line.
// The parser takes bytes in chunks (CsvParser.push) and may bound a record's length: the bytes of one
// record (its fields, quotes, commas and the newlines inside quoted fields) are counted as they arrive, so a
// record longer than the limit (a quote never closed, a file without a newline) is refused after at most
// one more chunk, never buffered whole. The syntax characters are ASCII, which never occurs inside a
// multi-byte UTF-8 character, so splitting bytes is splitting characters; each field is decoded as UTF-8.

export interface CsvRow {
  line: number;
  fields: string[];
}

export class CsvSyntaxError extends Error {
  constructor(readonly line: number, message: string) {
    super(message);
  }
}

/** A record is longer than the parser's limit (`inQuotes`: it ended inside a quoted field). */
export class CsvRecordTooLongError extends CsvSyntaxError {
  constructor(line: number, readonly limit: number, readonly inQuotes: boolean) {
    super(line, `a record longer than ${limit} bytes${inQuotes ? ' (is a quote not closed?)' : ''}`);
  }
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const LF = 0x0a;

/** Streaming CSV parser: push(bytes)... end(); each complete row goes to onRow as soon as it ends. */
export class CsvParser {
  readonly #onRow: (row: CsvRow) => void;
  readonly #maxRecordBytes: number;
  #fields: string[] = [];
  #field = Buffer.alloc(256);
  #fieldLen = 0;
  #line = 1;
  #rowLine = 1;
  #recordBytes = 0;
  #quoted = false; // inside a quoted field
  #quoteSeen = false; // inside a quoted field, just after a quote (a doubled quote or the closing one)
  #wasQuoted = false; // the current field was quoted (text after the closing quote is an error)
  #crSeen = false; // outside quotes, just after a CR (dropped when LF follows)
  #bomChecked = 0; // bytes of the leading BOM matched so far; 3 = done

  /** maxRecordBytes: most bytes in one record (without the newline that ends it) */
  constructor(onRow: (row: CsvRow) => void, maxRecordBytes = Infinity) {
    this.#onRow = onRow;
    this.#maxRecordBytes = maxRecordBytes;
  }

  #append(c: number): void {
    if (this.#fieldLen === this.#field.length) {
      const bigger = Buffer.alloc(this.#field.length * 2);
      this.#field.copy(bigger, 0, 0, this.#fieldLen);
      this.#field = bigger;
    }
    this.#field[this.#fieldLen++] = c;
  }

  #endField(): void {
    this.#fields.push(this.#field.toString('utf8', 0, this.#fieldLen));
    this.#fieldLen = 0;
    this.#wasQuoted = false;
  }

  #endRow(): void {
    const blank = this.#fields.length === 0 && this.#fieldLen === 0 && !this.#wasQuoted;
    this.#endField();
    const fields = this.#fields;
    this.#fields = [];
    this.#recordBytes = 0;
    if (!blank) this.#onRow({ line: this.#rowLine, fields });
  }

  /** one more byte of the current record (line ends outside quotes are not counted) */
  #count(): void {
    if (++this.#recordBytes > this.#maxRecordBytes) {
      throw new CsvRecordTooLongError(this.#rowLine, this.#maxRecordBytes, this.#quoted);
    }
  }

  /** a CR outside quotes that is not followed by LF: an ordinary byte */
  #plainCr(): void {
    this.#count();
    this.#plain(CR);
  }

  /** a byte outside quotes that is not a quote, comma or line end */
  #plain(c: number): void {
    if (this.#wasQuoted) throw new CsvSyntaxError(this.#line, 'text after a closing quote');
    this.#append(c);
  }

  /** Takes the bytes of `chunk` (copied: the caller may reuse it). Throws CsvSyntaxError. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (this.#bomChecked < 3 && i < chunk.length) {
      const want = [0xef, 0xbb, 0xbf][this.#bomChecked]!;
      if (chunk[i] !== want) {
        // not a BOM: feed back what matched so far (only possible when it was split across chunks)
        const matched = this.#bomChecked;
        this.#bomChecked = 3;
        if (matched > 0) this.push(Uint8Array.from([0xef, 0xbb, 0xbf].slice(0, matched)));
        break;
      }
      this.#bomChecked++;
      i++;
    }
    for (; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.#quoted) {
        if (this.#quoteSeen) {
          this.#quoteSeen = false;
          if (c === QUOTE) {
            this.#count();
            this.#append(QUOTE);
            continue;
          }
          this.#quoted = false; // that quote closed the field; this byte is outside quotes
        } else {
          this.#count();
          if (c === QUOTE) this.#quoteSeen = true;
          else {
            if (c === LF) this.#line++;
            this.#append(c);
          }
          continue;
        }
      }
      if (this.#crSeen) {
        this.#crSeen = false;
        if (c !== LF) this.#plainCr(); // a CR of a CRLF is dropped
      }
      if (c === LF) {
        this.#endRow();
        this.#line++;
        this.#rowLine = this.#line;
        continue;
      }
      if (c === CR) {
        this.#crSeen = true;
        continue;
      }
      this.#count();
      if (c === QUOTE) {
        if (this.#fieldLen !== 0 || this.#wasQuoted) throw new CsvSyntaxError(this.#line, 'a quote inside an unquoted field (quote the whole field and double the quote)');
        this.#quoted = true;
        this.#wasQuoted = true;
      } else if (c === COMMA) {
        this.#endField();
      } else {
        this.#plain(c);
      }
    }
  }

  /** The end of the input: the last row (without a newline) goes to onRow. Throws CsvSyntaxError. */
  end(): void {
    if (this.#bomChecked > 0 && this.#bomChecked < 3) {
      const matched = this.#bomChecked;
      this.#bomChecked = 3;
      this.push(Uint8Array.from([0xef, 0xbb, 0xbf].slice(0, matched)));
    }
    if (this.#quoted && this.#quoteSeen) {
      this.#quoted = false;
      this.#quoteSeen = false;
    }
    if (this.#quoted) throw new CsvSyntaxError(this.#rowLine, 'a quoted field is not closed');
    if (this.#crSeen) {
      this.#crSeen = false;
      this.#plainCr();
    }
    if (this.#fieldLen > 0 || this.#fields.length > 0 || this.#wasQuoted) this.#endRow();
  }
}

/** Parses a whole CSV text. Throws CsvSyntaxError. */
export function parseCsv(text: string, maxRecordBytes = Infinity): CsvRow[] {
  const rows: CsvRow[] = [];
  const p = new CsvParser((r) => rows.push(r), maxRecordBytes);
  p.push(Buffer.from(text, 'utf8'));
  p.end();
  return rows;
}
