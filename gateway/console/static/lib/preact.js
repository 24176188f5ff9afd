// The one import point of the vendored Preact, its hooks and htm (pinned: vendor/VERSIONS.md).
// Pages and components import from here, never from vendor/ directly.
import { h, render, Fragment, createContext, createRef, cloneElement, toChildArray } from "../vendor/preact-11.2.0/preact.mjs";
import htm from "../vendor/htm-3.1.1/htm.mjs";

export {
  useState, useEffect, useLayoutEffect, useRef, useMemo, useCallback, useContext, useReducer, useId,
} from "../vendor/preact-11.2.0/hooks.mjs";
export { h, render, Fragment, createContext, createRef, cloneElement, toChildArray };

// html`<div class=${x}>...</div>`: JSX-like templates without a build step.
export const html = htm.bind(h);
