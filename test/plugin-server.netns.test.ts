// The plugin through the CNI server: how a node with a running agent serves ADDs.
import { pluginSuite } from './plugin.suite.js';

pluginSuite('server');
