// Keeps the kernel's routes of protocol lightly equal to a desired set: adopt, diff, one batch per burst.
import { execa } from 'execa';
import { ROUTE_PROTOCOL } from './protocol-number.js';
import { type Route, diffRoutes, parseIpJson, renderBatch } from './route.js';

export interface ReconcilerOptions {
  /** Run `ip` inside this named namespace (tests); default: our own. */
  netns?: string;
  /** Changes within this window go out in one batch. */
  debounceMs?: number;
  onError?(err: Error): void;
}

export class RouteReconciler {
  private desired = new Map<string, Route>();
  private actual = new Map<string, Route>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;

  constructor(private readonly options: ReconcilerOptions = {}) {}

  private ipArgs(args: string[]): string[] {
    return this.options.netns ? ['-n', this.options.netns, ...args] : args;
  }

  /** Reads what the kernel has with our protocol (IPv4 and IPv6, main table). */
  async readKernel(): Promise<Route[]> {
    const routes: Route[] = [];
    for (const family of ['-4', '-6']) {
      const out = await execa('ip', this.ipArgs(['-json', family, 'route', 'show', 'table', 'main', 'proto', String(ROUTE_PROTOCOL)]), { reject: false });
      if (out.exitCode !== 0) throw new Error(`ip route show failed: ${out.stderr.trim()}`);
      routes.push(...parseIpJson(out.stdout));
    }
    return routes;
  }

  /** Adopts what is already installed: nothing is touched until the first desired set arrives. */
  async start(): Promise<void> {
    this.actual = new Map((await this.readKernel()).map((r) => [r.prefix, r]));
  }

  setDesired(routes: Route[]): void {
    this.desired = new Map(routes.map((r) => [r.prefix, r]));
    this.schedule();
  }

  installed(): Route[] {
    return [...this.actual.values()].sort((a, b) => a.prefix.localeCompare(b.prefix));
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile().catch((err: Error) => this.options.onError?.(err));
    }, this.options.debounceMs ?? 10);
  }

  /** One pass: diff, one `ip -force -batch` for all changes, then read back what the kernel has. */
  async reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const diff = diffRoutes(this.desired.values(), this.actual.values());
        const lines = renderBatch(diff, this.actual);
        if (lines.length === 0) continue;
        const out = await execa('ip', this.ipArgs(['-force', '-batch', '-']), { input: lines.join('\n') + '\n', reject: false });
        this.actual = new Map((await this.readKernel()).map((r) => [r.prefix, r]));
        if (out.exitCode !== 0) {
          const failed = [...out.stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => lines[Number(m[1]) - 1]);
          this.options.onError?.(new Error(`${failed.length} route change(s) failed, e.g. "${failed[0]}": ${out.stderr.split('\n')[0]}`));
        }
      } while (this.again);
    })();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }

  /** Waits for pending changes to reach the kernel. Routes stay installed. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.reconcile();
  }
}
