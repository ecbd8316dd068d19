// The JS half of the fazt bridge, evaluated once in every new QuickJS context.
//
// Every call from Python into JS releases and re-takes the GIL, a thread switch
// when the IOLoop is busy, so the protocol keeps them few: a synchronous handler
// costs two calls (__fazt_run, one execute_pending_job), an async one four.
//
// It is a function expression: Python calls it with a config object and it
// installs `fazt`, `console` and five internal functions (__fazt_run, __fazt_poll,
// __fazt_settle, __fazt_define, __fazt_reset). Python takes handles on the
// internals and then deletes those globals, so handler code cannot reach them.
//
// JS never calls Python (the wrapper refuses while a time limit is set, and a
// raising Python callable poisons the context). Instead every host call and log
// line goes into an outbox that Python drains with __fazt_poll() between
// execute_pending_job() calls, and Python settles host calls with __fazt_settle.
// Everything crossing the boundary is a JSON string made by the JSON functions
// captured here, before handler code could replace them.
(function (config) {
  "use strict";
  const G = globalThis;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const isArray = Array.isArray;
  const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
  const keysOf = Object.keys;
  const freeze = Object.freeze;
  const PromiseCtor = Promise;
  const resolved = Promise.resolve.bind(Promise);
  const rejected = Promise.reject.bind(Promise);
  const MapCtor = Map;
  const ErrorCtor = Error;
  const InternalErrorCtor = InternalError;
  const apply = Reflect.apply;
  const ArrayJoin = Array.prototype.join;
  // Strings built with "+" can be ropes, which the wrapper cannot convert
  // ("Unknown quickjs tag"); Array.prototype.join always returns a flat string.
  const join = (parts, sep) => apply(ArrayJoin, parts, [sep]);

  const MAX_LOG_CHARS = config.maxLogChars; // one log line is cut to this length
  // Console output per request, in UTF-8 bytes (each line counts one more, for its
  // newline). Past it, one "truncated" line is written and the rest is dropped.
  const CONSOLE_LIMIT = config.consoleLimitBytes;

  let calls = []; // pending host calls as JSON text: [id,"fazt.ns.fn",[args...]]
  let logs = []; // [level, text] pairs
  let consoleBytes = 0; // written by the request in flight
  let consoleTruncated = false;
  const waiting = new MapCtor(); // call id -> [resolve, reject]
  let nextCallId = 1;
  let current = null; // the request in flight: {done, envelope}

  const defs = new MapCtor(); // module key -> {kind: "js"|"json"|"error", ...}
  let modules = new MapCtor(); // module key -> module object (the require cache)

  // ---- console and fazt.log -------------------------------------------------

  function describe(value) {
    if (typeof value === "string") return value;
    if (value instanceof ErrorCtor) {
      const head = String(value.name) + ": " + String(value.message);
      return value.stack ? head + "\n" + String(value.stack) : head;
    }
    if (value === undefined || typeof value === "function" || typeof value === "symbol" ||
        typeof value === "bigint") {
      try { return String(value); } catch (e) { return "[unprintable]"; }
    }
    try {
      const text = stringify(value);
      return text === undefined ? String(value) : text;
    } catch (e) {
      try { return String(value); } catch (e2) { return "[unprintable]"; }
    }
  }

  function utf8Length(text) {
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) { n += 4; i++; }
      else n += 3;
    }
    return n;
  }

  function pushLog(level, args) {
    if (consoleTruncated) return;
    let text = "";
    for (let i = 0; i < args.length; i++) {
      if (i) text += " ";
      try { text += describe(args[i]); } catch (e) { text += "[unprintable]"; }
      if (text.length > MAX_LOG_CHARS) break;
    }
    if (text.length > MAX_LOG_CHARS) text = text.slice(0, MAX_LOG_CHARS) + "... [truncated]";
    consoleBytes += utf8Length(text) + 1;
    if (consoleBytes > CONSOLE_LIMIT) {
      consoleTruncated = true;
      logs.push(["warning", "console output truncated: this request wrote more than " +
                 CONSOLE_LIMIT + " bytes; the rest of its console output is dropped"]);
      return;
    }
    logs.push([level, text]);
  }

  G.console = {
    log: (...args) => pushLog("info", args),
    info: (...args) => pushLog("info", args),
    debug: (...args) => pushLog("debug", args),
    warn: (...args) => pushLog("warning", args),
    error: (...args) => pushLog("error", args),
  };

  // ---- host calls ---------------------------------------------------------------

  // Why a value cannot cross as JSON, or null. JSON.stringify would silently drop
  // functions and undefined, and turn NaN into null; a host function would then see
  // different data than the caller passed, so those are refused here.
  const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

  function unserialisable(value, path, stack) {
    const t = typeof value;
    if (value === null || t === "string" || t === "boolean") return null;
    if (t === "number") return Number.isFinite(value) ? null : "a non-finite number at " + path;
    if (t === "undefined") return "undefined at " + path;
    if (t === "function") return "a function at " + path;
    if (t === "bigint") return "a BigInt at " + path;
    if (t === "symbol") return "a symbol at " + path;
    if (stack.indexOf(value) !== -1) return "a cycle at " + path;
    if (stack.length > 64) return "nesting deeper than 64 levels at " + path;
    stack.push(value);
    try {
      if (isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const why = unserialisable(value[i], path + "[" + i + "]", stack);
          if (why) return why;
        }
        return null;
      }
      if (typeof value.toJSON === "function") return null; // e.g. Date: JSON calls it
      for (const key of Object.keys(value)) {
        // As the strict JSON check words paths: a key that is not a plain name is
        // quoted, escapes and all, so the message never carries a lone surrogate.
        const where = PLAIN_KEY.test(key) ? path + "." + key : path + "[" + stringify(key) + "]";
        const why = unserialisable(value[key], where, stack);
        if (why) return why;
      }
      return null;
    } finally {
      stack.pop();
    }
  }

  function hostCall(qualified, args) {
    for (let i = 0; i < args.length; i++) {
      const why = unserialisable(args[i], "argument " + (i + 1), []);
      if (why) {
        return rejected(new TypeError(
          qualified + ": argument " + (i + 1) + " is not JSON-serialisable (" + why + ")"));
      }
    }
    let text;
    try {
      text = stringify(args);
    } catch (e) {
      return rejected(new TypeError(qualified + ": arguments are not JSON-serialisable"));
    }
    return new PromiseCtor((resolve, reject) => {
      const id = nextCallId++;
      waiting.set(id, [resolve, reject]);
      calls.push("[" + id + "," + stringify(qualified) + "," + text + "]");
    });
  }

  const fazt = {};
  for (const [ns, names] of config.namespaces) {
    const space = {};
    for (const name of names) {
      const qualified = "fazt." + ns + "." + name;
      space[name] = (...args) => hostCall(qualified, args);
    }
    fazt[ns] = freeze(space);
  }
  fazt.app = freeze({ slug: config.app.slug, uuid: config.app.uuid });
  fazt.log = (...args) => pushLog("info", args);
  Object.defineProperty(G, "fazt", {
    value: freeze(fazt), writable: false, enumerable: false, configurable: false,
  });

  // ---- CommonJS -------------------------------------------------------------------
  // Module keys are POSIX paths relative to the app's api/ folder ("lib/db.js").
  // Python loads the files (it alone can see the disk) and defines them here;
  // resolution below mirrors fazt/js_bridge/modules.py.

  function normalise(baseDir, spec) {
    const parts = baseDir ? baseDir.split("/") : [];
    for (const seg of spec.split("/")) {
      if (seg === "" || seg === ".") continue;
      if (seg === "..") {
        if (!parts.length) return null;
        parts.pop();
      } else {
        parts.push(seg);
      }
    }
    return parts.join("/");
  }

  function resolveKey(fromKey, spec) {
    if (typeof spec !== "string") throw new TypeError("require: the module name must be a string");
    if (!(spec.startsWith("./") || spec.startsWith("../"))) {
      throw new ErrorCtor("require('" + spec + "'): only relative paths inside the app's api/ " +
                          "folder can be required (there are no built-in modules)");
    }
    const slash = fromKey.lastIndexOf("/");
    const key = normalise(slash === -1 ? "" : fromKey.slice(0, slash), spec);
    if (key === null || key === "") {
      throw new ErrorCtor("require('" + spec + "'): the path leaves the app's api/ folder");
    }
    const candidates = (key.endsWith(".js") || key.endsWith(".json"))
      ? [key] : [key, key + ".js", key + ".json", key + "/index.js"];
    for (const candidate of candidates) {
      if (defs.has(candidate)) return candidate;
    }
    throw new ErrorCtor("require('" + spec + "'): no such module in api/ (only require calls " +
                        "with a literal relative path are loaded)");
  }

  function load(key) {
    const cached = modules.get(key);
    if (cached) return cached.exports;
    const def = defs.get(key);
    if (!def) throw new ErrorCtor("module " + key + " is not loaded");
    if (def.kind === "error") throw new ErrorCtor(def.message);
    if (def.kind === "json") {
      const module = { id: key, exports: parse(def.text) };
      modules.set(key, module);
      return module.exports;
    }
    const module = { id: key, exports: {} };
    modules.set(key, module);
    const require = (spec) => load(resolveKey(key, spec));
    try {
      def.factory.call(module.exports, module, module.exports, require);
    } catch (e) {
      modules.delete(key); // as in Node: a module that threw is loaded afresh next time
      throw e;
    }
    return module.exports;
  }

  // ---- requests -----------------------------------------------------------------

  function errorEnvelope(e) {
    let name = "Error", message, stack = "";
    if (e instanceof ErrorCtor) {
      try {
        name = String(e.name);
        message = String(e.message);
        stack = e.stack ? String(e.stack) : "";
      } catch (e2) {
        message = "an error that cannot be described";
      }
    } else {
      try { message = typeof e === "string" ? e : describe(e); } catch (e2) { message = "?"; }
      name = "thrown value";
    }
    let limit = null;
    // QuickJS throws null when it cannot even allocate the "out of memory" error.
    if (isOutOfMemory(e)) limit = "memory";
    if (name === "InternalError" && message === "interrupted") limit = "time";
    return { error: message, name: name, stack: stack, limit: limit };
  }

  function responseEnvelope(v) {
    if (v === undefined) return { kind: "empty", status: 204, headers: {}, body: "" };
    if (v !== null && typeof v === "object" && !isArray(v) &&
        (hasOwn(v, "json") || hasOwn(v, "body"))) {
      if (hasOwn(v, "json") && hasOwn(v, "body")) {
        return { error: "the handler returned both json and body; return one of them",
                 name: "BadResponse", stack: "", limit: null };
      }
      const status = v.status === undefined ? null : v.status;
      const headers = v.headers === undefined ? null : v.headers;
      if (hasOwn(v, "json")) {
        const text = stringify(v.json);
        return { kind: "json", status: status, headers: headers,
                 body: text === undefined ? "null" : text };
      }
      return { kind: "text", status: status, headers: headers, body: v.body };
    }
    const text = stringify(v);
    return { kind: "json", status: null, headers: null, body: text === undefined ? "null" : text };
  }

  // Made now: when memory is exhausted, reporting it must not allocate.
  const MEMORY_ENVELOPE = stringify({ error: "out of memory", name: "InternalError", stack: "",
                                      limit: "memory" });

  function isOutOfMemory(e) {
    return e === null || (e instanceof InternalErrorCtor && e.message === "out of memory");
  }

  function finish(state, makeEnvelope) {
    let text;
    try {
      text = stringify(makeEnvelope());
    } catch (e) {
      try {
        if (isOutOfMemory(e)) {
          text = MEMORY_ENVELOPE;
        } else {
          const why = e instanceof ErrorCtor ? String(e.message) : "unknown reason";
          text = stringify({ error: "the handler's response is not JSON-serialisable: " + why,
                             name: "BadResponse", stack: "", limit: null });
        }
      } catch (e2) {
        text = MEMORY_ENVELOPE; // describing the failure failed: memory is exhausted
      }
    }
    state.done = true;
    state.envelope = text;
  }

  // The request body parsed as JSON, or null when it is empty or not JSON.
  function parseBody(bodyText) {
    try {
      return parse(bodyText);
    } catch (e) {
      if (isOutOfMemory(e)) throw e;
      return null;
    }
  }

  // Starts the handler. Returns the poll string when it finished synchronously
  // (Python then needs no job-queue round trip), else "".
  G.__fazt_run = function (key, requestText, bodyText) {
    const state = begin();
    start(state, key, requestText, bodyText);
    return state.done ? poll() : "";
  };

  // A new request in flight: its state, and a fresh console budget.
  function begin() {
    const state = { done: false, envelope: null };
    current = state;
    consoleBytes = 0;
    consoleTruncated = false;
    return state;
  }

  function start(state, key, requestText, bodyText) {
    let result;
    try {
      const handler = load(key);
      if (typeof handler !== "function") {
        finish(state, () => ({
          error: "api/" + key + " must export a function: module.exports = async (req) => ...",
          name: "BadHandler", stack: "", limit: null }));
        return;
      }
      const req = parse(requestText);
      req.body = bodyText;
      req.json = parseBody(bodyText);
      result = handler(req);
      if (result === null || (typeof result !== "object" && typeof result !== "function") ||
          typeof result.then !== "function") {
        finish(state, () => responseEnvelope(result)); // a sync handler needs no job queue
        return;
      }
    } catch (e) {
      finish(state, () => errorEnvelope(e));
      return;
    }
    resolved(result).then(
      (v) => finish(state, () => responseEnvelope(v)),
      (e) => finish(state, () => errorEnvelope(e)));
  }

  // Calls a named export of a module (a realtime hook, say) with one argument.
  // Its envelope is a JSON response: 200 with {"value": v} ({} when v is
  // undefined), 404 when there is no such function. With listFunctions the
  // value is the names of the module's exported functions.
  G.__fazt_call = function (key, name, argText, listFunctions) {
    const state = begin();
    callExport(state, key, name, argText, listFunctions);
    return state.done ? poll() : "";
  };

  function valueEnvelope(v) {
    return { kind: "json", status: 200, headers: null, body: stringify({ value: v }) };
  }

  function callExport(state, key, name, argText, listFunctions) {
    let result;
    try {
      const exports = load(key);
      const holder = exports !== null && (typeof exports === "object" ||
                                          typeof exports === "function");
      if (listFunctions) {
        const names = [];
        const keys = holder ? keysOf(exports) : [];
        for (let i = 0; i < keys.length; i++) {
          if (typeof exports[keys[i]] === "function") names[names.length] = keys[i];
        }
        finish(state, () => valueEnvelope(names));
        return;
      }
      const fn = holder && hasOwn(exports, name) ? exports[name] : undefined;
      if (typeof fn !== "function") {
        finish(state, () => ({ kind: "json", status: 404, headers: null,
          body: stringify({ error: "api/" + key + " does not export a function " + name }) }));
        return;
      }
      result = apply(fn, exports, [parse(argText)]);
      if (result === null || (typeof result !== "object" && typeof result !== "function") ||
          typeof result.then !== "function") {
        finish(state, () => valueEnvelope(result));
        return;
      }
    } catch (e) {
      finish(state, () => errorEnvelope(e));
      return;
    }
    resolved(result).then(
      (v) => finish(state, () => valueEnvelope(v)),
      (e) => finish(state, () => errorEnvelope(e)));
  }

  // One string: {"calls":[...],"logs":[...],"done":<envelope JSON or null>}.
  function poll() {
    const out = join(['{"calls":[', join(calls, ","), '],"logs":', stringify(logs),
      ',"done":', current && current.done ? current.envelope : "null", "}"], "");
    calls = [];
    logs = [];
    return out;
  }
  G.__fazt_poll = poll;

  // Settles a batch of host calls: [[id, true, result], [id, false, "message"], ...].
  G.__fazt_settle = function (resultsText) {
    const results = parse(resultsText);
    for (let i = 0; i < results.length; i++) {
      const [id, ok, value] = results[i];
      const entry = waiting.get(id);
      if (!entry) continue;
      waiting.delete(id);
      if (ok) entry[0](value);
      else entry[1](new ErrorCtor(String(value)));
    }
  };

  // Python compiles each file as "(function (module, exports, require) {...})" and
  // passes the function here; JSON files and load errors arrive as text.
  G.__fazt_define = function (key, kind, payload) {
    if (kind === "js") defs.set(key, { kind: "js", factory: payload });
    else if (kind === "json") defs.set(key, { kind: "json", text: payload });
    else defs.set(key, { kind: "error", message: payload });
  };

  // A changed file invalidates every loaded module: dependents must re-run too.
  G.__fazt_reset = function () {
    modules = new MapCtor();
    current = null;
  };
})
