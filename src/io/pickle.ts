// A restricted pickle machine: it decodes Python's pickle opcodes (the binary protocols 2-5, plus the few text
// opcodes old writers still emit) into plain JS values, and leaves every decision about classes and functions to
// the caller's hooks. Nothing is ever imported or called: GLOBAL only asks `findGlobal`, which must either return
// an inert marker for a name it allows or throw; REDUCE/NEWOBJ/BUILD hand those markers back to the hooks.
// Opcodes that exist to reach arbitrary code (INST, OBJ, EXT*, out-of-band buffers) are refused outright.
//
// Python values become: None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
// str -> string, bytes/bytearray -> Uint8Array, list -> array, tuple -> frozen array, dict -> Map.
//
// The encoder at the end writes the protocol-2 subset that torch's own pickler produces for a state dict.

import { UserError } from "../util/errors.js";

export type PyKey = string | number | bigint | boolean | null;

/** A name referenced by GLOBAL/STACK_GLOBAL; the hooks decide what it becomes. */
export interface UnpickleHooks {
  /** Returns an inert marker for an allowed `module.name`, or throws a UserError. */
  findGlobal(module: string, name: string): unknown;
  persistentLoad(pid: unknown): unknown;
  /** REDUCE and NEWOBJ: `fn` is something findGlobal returned (or any other stack value: refuse it). */
  call(fn: unknown, args: readonly unknown[]): unknown;
  /** BUILD: set `state` on `obj`; returns the object to leave on the stack. */
  build(obj: unknown, state: unknown): unknown;
}

export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

export function isList(v: unknown): v is unknown[] {
  return Array.isArray(v) && !Object.isFrozen(v);
}

// Opcode bytes, named as in Python's pickletools.
const OP = {
  MARK: 0x28, // (
  STOP: 0x2e, // .
  POP: 0x30, // 0
  POP_MARK: 0x31, // 1
  DUP: 0x32, // 2
  FLOAT: 0x46, // F
  INT: 0x49, // I
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  LONG: 0x4c, // L
  BININT2: 0x4d, // M
  NONE: 0x4e, // N
  PERSID: 0x50, // P
  BINPERSID: 0x51, // Q
  REDUCE: 0x52, // R
  STRING: 0x53, // S
  BINSTRING: 0x54, // T
  SHORT_BINSTRING: 0x55, // U
  UNICODE: 0x56, // V
  BINUNICODE: 0x58, // X
  APPEND: 0x61, // a
  BUILD: 0x62, // b
  GLOBAL: 0x63, // c
  DICT: 0x64, // d
  EMPTY_DICT: 0x7d, // }
  APPENDS: 0x65, // e
  GET: 0x67, // g
  BINGET: 0x68, // h
  INST: 0x69, // i
  LONG_BINGET: 0x6a, // j
  LIST: 0x6c, // l
  EMPTY_LIST: 0x5d, // ]
  OBJ: 0x6f, // o
  PUT: 0x70, // p
  BINPUT: 0x71, // q
  LONG_BINPUT: 0x72, // r
  SETITEM: 0x73, // s
  TUPLE: 0x74, // t
  EMPTY_TUPLE: 0x29, // )
  SETITEMS: 0x75, // u
  BINFLOAT: 0x47, // G
  PROTO: 0x80,
  NEWOBJ: 0x81,
  EXT1: 0x82,
  EXT2: 0x83,
  EXT4: 0x84,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  LONG4: 0x8b,
  BINBYTES: 0x42, // B
  SHORT_BINBYTES: 0x43, // C
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  NEWOBJ_EX: 0x92,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
  BYTEARRAY8: 0x96,
  NEXT_BUFFER: 0x97,
  READONLY_BUFFER: 0x98,
} as const;

const OP_NAMES = new Map<number, string>(Object.entries(OP).map(([k, v]) => [v, k]));

const utf8 = new TextDecoder("utf-8", { fatal: true });
// Not TextDecoder("latin1"): the Encoding standard maps that label to windows-1252, which differs at 0x80-0x9f.
function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

function toInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

// Python's LONG1/LONG4 payload: little-endian two's complement of any length. Converted through one hex string,
// so the cost is linear in the length (shifting a BigInt byte by byte is quadratic: 160 KB took 50 s).
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let hex = "";
  for (let i = b.length - 1; i >= 0; i--) hex += HEX[b[i]];
  let v = BigInt(`0x${hex}`);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return toInt(v);
}

/**
 * Bounds on what one pickle may make this machine do. A state dict needs a few opcodes, memo slots and
 * containers per tensor and nests a handful of levels deep; these leave orders of magnitude of room above the
 * largest real checkpoint (a 2.5B-parameter model's pickle is a few MB) and stop hostile pickles early with a
 * one-line error, instead of running out of memory or stack.
 */
export const PICKLE_LIMITS = {
  /** Opcodes executed. */
  maxOps: 50_000_000,
  /** Open MARKs at once, and the nesting depth of the values built. */
  maxDepth: 1000,
  /** Values on the stack, all open MARKs included. */
  maxStack: 1_000_000,
  /** Memo slots (a JS Map holds at most 2^24). */
  maxMemo: 1 << 20,
  /** Containers (lists, tuples, dicts) and objects from the hooks, each costing memory beyond its opcode. */
  maxObjects: 10_000_000,
  /** Bytes of one LONG1/LONG4 integer; and digits of a text INT/LONG, as Python's default int_max_str_digits. */
  maxLongBytes: 1 << 20,
  maxIntDigits: 4300,
} as const;

/**
 * Runs the pickle in `data` and returns the object STOP leaves. `source` names the stream in errors.
 */
export function unpickle(data: Uint8Array, hooks: UnpickleHooks, source: string): unknown {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  const L = PICKLE_LIMITS;
  let ops = 0;
  let objects = 0;
  let savedItems = 0; // values held in the stacks that open MARKs put aside
  // Nesting depth of each container built, so a million-deep tuple is refused here rather than overflowing
  // the stack of whatever walks it later. (Consumers must still not recurse without bound: a list can be
  // filled after it was nested, or contain itself, through the memo.)
  const depthOf = new WeakMap<object, number>();
  const depth = (v: unknown): number => (typeof v === "object" && v !== null ? (depthOf.get(v) ?? 0) : 0);

  // Annotated so that calls narrow types: TypeScript only treats explicitly typed functions as never-returning.
  const fail: (why: string, at?: number) => never = (why, at = pos) => {
    throw new UserError(`${source}: bad pickle at byte ${at}: ${why}`);
  };
  const need = (n: number): number => {
    if (n < 0 || pos + n > data.byteLength) fail("truncated");
    const at = pos;
    pos += n;
    return at;
  };
  const bytes = (n: number): Uint8Array => data.subarray(need(n), pos);
  const u8 = (): number => data[need(1)];
  const u16 = (): number => dv.getUint16(need(2), true);
  const u32 = (): number => dv.getUint32(need(4), true);
  const u64 = (): number => {
    const v = dv.getBigUint64(need(8), true);
    if (v > BigInt(data.byteLength)) fail("a length runs past the end");
    return Number(v);
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail("unterminated text argument");
    const s = latin1(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail("a string is not valid UTF-8");
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) fail("no MARK to pop to");
    stack = prev;
    savedItems -= prev.length;
    return items;
  };
  /** Records a new object (a container, or what a hook made) and that `container` now holds `items`. */
  const made = <T>(v: T): T => {
    if (++objects > L.maxObjects) fail(`more than ${L.maxObjects} objects`);
    return v;
  };
  const holds = (container: object, items: readonly unknown[]): void => {
    let d = depthOf.get(container) ?? 1;
    for (const v of items) d = Math.max(d, depth(v) + 1);
    if (d > L.maxDepth) fail(`values nested more than ${L.maxDepth} deep`);
    depthOf.set(container, d);
  };
  const key = (k: unknown): PyKey => {
    if (k === null || ["string", "number", "bigint", "boolean"].includes(typeof k)) return k as PyKey;
    return fail("a dict key is not a string, number, bool or None");
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof Map)) fail("SETITEM(S) on something that is not a dict");
    if (items.length % 2 !== 0) fail("SETITEMS with an odd number of items");
    for (let i = 0; i < items.length; i += 2) d.set(key(items[i]), items[i + 1]);
    holds(d, items);
  };
  const appendItems = (l: unknown, items: unknown[]): void => {
    if (!isList(l)) fail("APPEND(S) on something that is not a list");
    for (const v of items) l.push(v);
    holds(l, items);
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo slot ${i} is empty`);
    return memo.get(i);
  };
  const memoPut = (i: number): void => {
    if (memo.size >= L.maxMemo && !memo.has(i)) fail(`more than ${L.maxMemo} memo entries`);
    memo.set(i, top());
  };
  const textIndex = (s: string): number =>
    /^\d+$/.test(s) ? Number(s) : fail(`bad memo index ${JSON.stringify(s)}`);
  const tuple = (items: unknown[]): readonly unknown[] => {
    const t = made(Object.freeze(items));
    holds(t, items);
    return t;
  };
  const bigInt = (s: string, what: string, at: number): number | bigint => {
    if (!/^[+-]?\d+$/.test(s)) fail(`bad ${what} ${JSON.stringify(s)}`, at);
    // BigInt() of a decimal string is quadratic in its length; Python refuses long ones by default too.
    if (s.length > L.maxIntDigits) fail(`an ${what} of more than ${L.maxIntDigits} digits`, at);
    return toInt(BigInt(s));
  };

  for (;;) {
    const at = pos;
    if (++ops > L.maxOps) fail(`more than ${L.maxOps} opcodes`);
    if (stack.length + savedItems > L.maxStack) fail(`more than ${L.maxStack} values on the stack`);
    const op = u8();
    switch (op) {
      case OP.PROTO:
        if (u8() > 5) fail("pickle protocol newer than 5", at);
        break;
      case OP.FRAME:
        u64(); // framing is only a buffering hint
        break;
      case OP.STOP: {
        const result = pop();
        if (marks.length) fail("MARK left open at STOP", at);
        return result;
      }
      case OP.MARK:
        if (marks.length >= L.maxDepth) fail(`more than ${L.maxDepth} MARKs open`, at);
        marks.push(stack);
        savedItems += stack.length;
        stack = [];
        break;
      case OP.POP:
        // As Python: POP right after MARK discards the mark.
        if (stack.length) stack.pop();
        else popMark();
        break;
      case OP.POP_MARK:
        popMark();
        break;
      case OP.DUP:
        stack.push(top());
        break;
      case OP.NONE:
        stack.push(null);
        break;
      case OP.NEWTRUE:
        stack.push(true);
        break;
      case OP.NEWFALSE:
        stack.push(false);
        break;
      case OP.BININT:
        stack.push(dv.getInt32(need(4), true));
        break;
      case OP.BININT1:
        stack.push(u8());
        break;
      case OP.BININT2:
        stack.push(u16());
        break;
      case OP.LONG1:
        stack.push(decodeLong(bytes(u8())));
        break;
      case OP.LONG4: {
        const n = dv.getInt32(need(4), true);
        if (n < 0) fail("negative LONG4 length", at);
        if (n > L.maxLongBytes) fail(`a LONG4 of more than ${L.maxLongBytes} bytes`, at);
        stack.push(decodeLong(bytes(n)));
        break;
      }
      case OP.INT: {
        const s = line().trim();
        // Protocol 0 spells booleans as INT 00/01.
        if (s === "00") stack.push(false);
        else if (s === "01") stack.push(true);
        else stack.push(bigInt(s, "INT", at));
        break;
      }
      case OP.LONG: {
        stack.push(bigInt(line().trim().replace(/L$/, ""), "LONG", at));
        break;
      }
      case OP.BINFLOAT:
        stack.push(dv.getFloat64(need(8), false));
        break;
      case OP.FLOAT: {
        const v = Number(line().trim());
        if (Number.isNaN(v)) fail("bad FLOAT", at);
        stack.push(v);
        break;
      }
      case OP.BINUNICODE:
        stack.push(str(bytes(u32())));
        break;
      case OP.SHORT_BINUNICODE:
        stack.push(str(bytes(u8())));
        break;
      case OP.BINUNICODE8:
        stack.push(str(bytes(u64())));
        break;
      // Python 2 str, decoded as torch.load does (encoding="utf-8").
      case OP.BINSTRING: {
        const n = dv.getInt32(need(4), true);
        stack.push(str(bytes(n)));
        break;
      }
      case OP.SHORT_BINSTRING:
        stack.push(str(bytes(u8())));
        break;
      case OP.BINBYTES:
        stack.push(bytes(u32()).slice());
        break;
      case OP.SHORT_BINBYTES:
        stack.push(bytes(u8()).slice());
        break;
      case OP.BINBYTES8:
      case OP.BYTEARRAY8:
        stack.push(bytes(u64()).slice());
        break;
      case OP.EMPTY_DICT:
        stack.push(made(new Map<PyKey, unknown>()));
        break;
      case OP.EMPTY_LIST:
        stack.push(made([]));
        break;
      case OP.EMPTY_TUPLE:
        stack.push(tuple([]));
        break;
      // popMark replaces `stack`, so its result goes through a local: `stack.push(popMark())` would push onto
      // the popped array.
      case OP.TUPLE: {
        const t = tuple(popMark());
        stack.push(t);
        break;
      }
      case OP.TUPLE1:
        stack.push(tuple([pop()]));
        break;
      case OP.TUPLE2: {
        const b = pop();
        stack.push(tuple([pop(), b]));
        break;
      }
      case OP.TUPLE3: {
        const c = pop();
        const b = pop();
        stack.push(tuple([pop(), b, c]));
        break;
      }
      case OP.LIST: {
        const l = made(popMark());
        holds(l, l);
        stack.push(l);
        break;
      }
      case OP.DICT: {
        const d = made(new Map<PyKey, unknown>());
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case OP.APPEND: {
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case OP.SETITEM: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case OP.BINPUT:
        memoPut(u8());
        break;
      case OP.LONG_BINPUT:
        memoPut(u32());
        break;
      case OP.PUT:
        memoPut(textIndex(line()));
        break;
      case OP.MEMOIZE:
        memoPut(memo.size);
        break;
      case OP.BINGET:
        stack.push(memoGet(u8()));
        break;
      case OP.LONG_BINGET:
        stack.push(memoGet(u32()));
        break;
      case OP.GET:
        stack.push(memoGet(textIndex(line())));
        break;
      case OP.GLOBAL: {
        const module = line();
        const name = line();
        stack.push(hooks.findGlobal(module, name));
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string")
          fail("STACK_GLOBAL needs two strings", at);
        stack.push(hooks.findGlobal(module, name));
        break;
      }
      case OP.REDUCE: {
        const args = pop();
        const fn = pop();
        if (!isTuple(args)) fail("REDUCE arguments are not a tuple", at);
        stack.push(made(hooks.call(fn, args)));
        break;
      }
      case OP.NEWOBJ: {
        const args = pop();
        const cls = pop();
        if (!isTuple(args)) fail("NEWOBJ arguments are not a tuple", at);
        stack.push(made(hooks.call(cls, args)));
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const obj = pop();
        stack.push(made(hooks.build(obj, state)));
        break;
      }
      case OP.BINPERSID:
        stack.push(made(hooks.persistentLoad(pop())));
        break;
      case OP.PERSID:
        stack.push(made(hooks.persistentLoad(line())));
        break;
      default: {
        const name = OP_NAMES.get(op);
        // INST/OBJ instantiate arbitrary classes, EXT* look names up in a registry, the buffer opcodes need
        // out-of-band data, sets and NEWOBJ_EX never occur in a state dict: refusing them keeps this small.
        fail(
          name
            ? `opcode ${name} is not supported (a checkpoint holding only tensors never needs it)`
            : `unknown opcode 0x${op.toString(16).padStart(2, "0")}`,
          at,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Builds a protocol-2 pickle: the caller emits values through these primitives in pickle order. */
export class PickleWriter {
  private parts: Uint8Array[] = [];
  private buf = new Uint8Array(1 << 16);
  private len = 0;
  private readonly memoOfGlobal = new Map<string, number>();
  private nextMemo = 0;
  private readonly enc = new TextEncoder();

  constructor() {
    this.byte(OP.PROTO);
    this.byte(2);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    this.parts.push(this.buf.subarray(0, this.len));
    this.buf = new Uint8Array(Math.max(1 << 16, n));
    this.len = 0;
  }

  private byte(b: number): void {
    this.room(1);
    this.buf[this.len++] = b;
  }

  private raw(b: Uint8Array): void {
    this.room(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }

  private u32(v: number): void {
    this.room(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setUint32(this.len, v, true);
    this.len += 4;
  }

  mark(): this {
    this.byte(OP.MARK);
    return this;
  }

  none(): this {
    this.byte(OP.NONE);
    return this;
  }

  bool(v: boolean): this {
    this.byte(v ? OP.NEWTRUE : OP.NEWFALSE);
    return this;
  }

  int(v: number | bigint): this {
    if (typeof v === "number" && !Number.isSafeInteger(v))
      throw new RangeError(`pickle: ${v} is not an integer`);
    if (typeof v === "number" && v >= 0 && v < 0x100) {
      this.byte(OP.BININT1);
      this.byte(v);
    } else if (typeof v === "number" && v >= 0 && v < 0x10000) {
      this.byte(OP.BININT2);
      this.byte(v & 0xff);
      this.byte(v >>> 8);
    } else if (typeof v === "number" && v >= -0x80000000 && v <= 0x7fffffff) {
      this.byte(OP.BININT);
      this.u32(v >>> 0);
    } else {
      // LONG1: the shortest little-endian two's complement that keeps the sign.
      let x = BigInt(v);
      const out: number[] = [];
      for (;;) {
        const b = Number(x & 0xffn);
        out.push(b);
        x >>= 8n;
        if ((x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0)) break;
      }
      this.byte(OP.LONG1);
      this.byte(out.length);
      this.raw(Uint8Array.from(out));
    }
    return this;
  }

  float(v: number): this {
    this.byte(OP.BINFLOAT);
    this.room(8);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat64(this.len, v, false);
    this.len += 8;
    return this;
  }

  str(s: string): this {
    const b = this.enc.encode(s);
    this.byte(OP.BINUNICODE);
    this.u32(b.byteLength);
    this.raw(b);
    return this;
  }

  /** GLOBAL, memoised so each name is spelled out once (as Python's pickler does). */
  global(module: string, name: string): this {
    const k = `${module}\n${name}\n`;
    const slot = this.memoOfGlobal.get(k);
    if (slot !== undefined) {
      if (slot < 0x100) {
        this.byte(OP.BINGET);
        this.byte(slot);
      } else {
        this.byte(OP.LONG_BINGET);
        this.u32(slot);
      }
      return this;
    }
    this.byte(OP.GLOBAL);
    this.raw(this.enc.encode(k));
    const id = this.nextMemo++;
    if (id < 0x100) {
      this.byte(OP.BINPUT);
      this.byte(id);
    } else {
      this.byte(OP.LONG_BINPUT);
      this.u32(id);
    }
    this.memoOfGlobal.set(k, id);
    return this;
  }

  op(
    name:
      | "EMPTY_DICT"
      | "EMPTY_LIST"
      | "EMPTY_TUPLE"
      | "TUPLE"
      | "SETITEMS"
      | "APPENDS"
      | "REDUCE"
      | "BINPERSID"
      | "STOP",
  ): this {
    this.byte(OP[name]);
    return this;
  }

  tuple(items: readonly (number | bigint)[]): this {
    if (items.length === 0) return this.op("EMPTY_TUPLE");
    this.mark();
    for (const v of items) this.int(v);
    return this.op("TUPLE");
  }

  /** The pickle so far, ending with STOP. */
  finish(): Uint8Array[] {
    this.op("STOP");
    this.parts.push(this.buf.subarray(0, this.len));
    const out = this.parts;
    this.parts = [];
    return out;
  }
}
