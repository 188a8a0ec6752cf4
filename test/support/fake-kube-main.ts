// The fake API as its own process, so it can run inside a lab namespace:
//   fake-kube-main.ts --host 192.0.2.254 --port 6443 --control /tmp/x/kube.sock [--nodes N]
// Prints one JSON line when listening; the test drives it over the control socket (fakeKubeRequest).
// --nodes N registers N realistic (~11.6 KB) Nodes, node-1 at 10.0.0.1 and node-i at 10.1.x.y.
import { FakeKube, NODES, realisticNode } from './fake-kube.js';

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
};
const api = new FakeKube();
await api.start({ host: flag('--host') ?? '127.0.0.1', port: Number(flag('--port') ?? 0), controlSocket: flag('--control') });
const count = Number(flag('--nodes') ?? 0);
for (let i = 1; i <= count; i++) {
  const address = i === 1 ? '10.0.0.1' : `10.1.${i >> 8}.${i & 255}`;
  api.upsert(NODES, realisticNode(`node-${i}`, address, `10.${64 + (i >> 8)}.${i & 255}.0/24`));
}
console.log(JSON.stringify({ listening: `${api.host}:${api.port}`, nodes: count }));
const stop = (): void => void api.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
