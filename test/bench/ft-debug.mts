import { FullTableLab } from '../support/fulltable.js';
const n = Number(process.argv[2] ?? 1000);
const lab = new FullTableLab({ prefixes: n });
const log = (...a: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...a);
let timer: any;
try {
  await lab.setUp();
  const t0 = await lab.startSenders();
  log('load', await lab.untilBoth(n, t0, 60_000));
  timer = setInterval(() => log('counts', lab.oursKernel!.count, lab.birdKernel!.count), 20);
  log('withdraw', await lab.untilBoth(0, await lab.senders('disable', 'generated'), 60_000));
  clearInterval(timer);
} catch (e) { log('ERR', (e as Error).message); }
finally { clearInterval(timer); (await import('node:fs')).copyFileSync(lab.dir + '/agent.log', '/tmp/agent-last.log'); await lab.tearDown(); }
