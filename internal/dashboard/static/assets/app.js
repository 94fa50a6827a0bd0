// xcomponent dashboard entry point: the modules under js/ (vanilla ES modules, no build step).
// mermaid is a classic deferred script: it has run before this module (modules are deferred
// too, in order).
import { boot } from './js/main.js';

boot();
