// lightlyctl's human output for `policy NS/POD`, pure: the agent's view of one pod in, text out.
import type { PodPolicyView } from '../policy/describe.js';

export function formatPodPolicy(v: PodPolicyView): string {
  const state = (dir: 'ingress' | 'egress'): string => (v.isolated[dir] ? 'isolated (only what a policy below allows)' : 'open (no policy selects it for ' + dir + ')');
  const lines = [`pod ${v.pod} on ${v.node || '(unscheduled)'} ${v.ips.join(', ') || '(no address yet)'}`, `  ingress: ${state('ingress')}`, `  egress:  ${state('egress')}`];
  if (!v.policies.length) lines.push('  selected by no NetworkPolicy');
  for (const p of v.policies) {
    lines.push(`  policy ${p.name}`);
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = p[dir];
      if (!rules) continue;
      if (!rules.length) lines.push(`    ${dir}: deny all`);
      for (const r of rules) lines.push(`    ${dir}: allow ${r}`);
    }
  }
  return lines.join('\n');
}
