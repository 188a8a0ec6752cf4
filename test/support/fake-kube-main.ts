// The fake API as its own process, so it can run inside a lab namespace:
//   fake-kube-main.ts --host 192.0.2.254 --port 6443 --control /tmp/x/kube.sock
// Prints one JSON line when listening; the test drives it over the control socket (fakeKubeRequest).
import { FakeKube } from './fake-kube.js';

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
};
const api = new FakeKube();
await api.start({ host: flag('--host') ?? '127.0.0.1', port: Number(flag('--port') ?? 0), controlSocket: flag('--control') });
console.log(JSON.stringify({ listening: `${api.host}:${api.port}` }));
const stop = (): void => void api.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
