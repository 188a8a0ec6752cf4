// lightlyctl's connection to the agent's status socket.
import { request } from 'node:http';

export class AgentUnavailableError extends Error {}

export function getJson<T>(socketPath: string, path: string, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(new Error(`agent answered ${res.statusCode} for ${path}: ${body}`));
          return;
        }
        try {
          resolve(JSON.parse(body) as T);
        } catch (err) {
          reject(new Error(`agent sent invalid JSON for ${path}: ${(err as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? 'no socket there' : err.code === 'ECONNREFUSED' ? 'nothing listening' : err.code === 'EACCES' ? 'permission denied (run as root)' : err.message;
      reject(new AgentUnavailableError(`cannot reach the lightly agent at ${socketPath} (${why}). Is lightly-agent running on this node?`));
    });
    req.end();
  });
}
