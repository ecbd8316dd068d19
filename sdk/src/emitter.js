// @ts-check
/** A tiny event emitter whose listeners cannot break the code that emits. */

/** @typedef {(...args: any[]) => void} Listener */

export class Emitter {
  constructor() {
    /** @type {Record<string, Listener[]>} */
    this._handlers = {};
  }

  /**
   * Add a listener; returns a function that removes it.
   * @param {string} event
   * @param {Listener} fn
   * @returns {() => void}
   */
  on(event, fn) {
    (this._handlers[event] ||= []).push(fn);
    return () => this.off(event, fn);
  }

  /**
   * Remove a listener added with `on` (no-op when it is not there).
   * @param {string} event
   * @param {Listener} fn
   */
  off(event, fn) {
    const list = this._handlers[event] || [];
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  /**
   * Call every listener of `event`, in the order they were added. A listener
   * that throws does not stop the others nor the SDK's own state machine: the
   * error is rethrown from a microtask, so the page still sees it as an
   * uncaught error (console, `window.onerror`).
   * @param {string} event
   * @param {...any} args
   */
  emit(event, ...args) {
    for (const fn of (this._handlers[event] || []).slice()) {
      try {
        fn(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
