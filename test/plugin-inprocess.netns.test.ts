// The plugin in-process: the shim's fallback when no CNI server runs on the node.
import { pluginSuite } from './plugin.suite.js';

pluginSuite('in-process');
