// Asks the node agent for the node's pod CIDRs when the conf names no subnet (Kubernetes mode).
import { request } from 'node:http';
import { CniCode, CniError } from './errors.js';

export function fetchPodCidrs(socketPath: string, timeoutMs = 2_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const fail = (why: string): void =>
      reject(new CniError(CniCode.AGENT_UNREACHABLE, `ipam.subnet is not set and the agent at ${socketPath} did not give the pod CIDR: ${why}`));
    const req = request({ socketPath, path: '/v1/node', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          const cidrs = (JSON.parse(body) as { podCIDRs?: unknown }).podCIDRs;
          if (!Array.isArray(cidrs) || cidrs.length === 0 || !cidrs.every((c) => typeof c === 'string')) {
            fail('the node has no pod CIDR yet');
            return;
          }
          resolve(cidrs as string[]);
        } catch (err) {
          fail(`bad answer: ${String(err)}`);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => fail(err.message));
    req.end();
  });
}
