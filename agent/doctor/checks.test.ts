// The doctor's pure core: facts of a healthy two-node path, each hop broken in turn, must name that hop first.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { diagnose, formatDiagnosis } from './checks.js';
import { type NodeFacts, nodeFactsSchema } from './facts.js';
import { FROM, FROM6, TO, TO6, healthy, healthy6 } from '../../test/support/doctor-facts.js';
import { compileNode } from '../policy/compile.js';
import { slimNamespace, slimNetworkPolicy, slimPod } from '../policy/objects.js';
import { policyFacts } from '../policy/verdict.js';

const run = (src: NodeFacts, dst: NodeFacts) => diagnose(FROM, TO, src, { facts: dst });

describe('doctor: the pure diagnosis', () => {
  it('a healthy path: every check ok, in the packet order, and the schema takes the facts', () => {
    const { src, dst } = healthy();
    expect(nodeFactsSchema.parse(src)).toEqual(src);
    const d = run(src, dst);
    expect(d.ok).toBe(true);
    expect(d.firstBroken).toBeUndefined();
    expect(d.checks.map((c) => c.id)).toEqual([
      'source-pod-eth0', 'source-pod-default-route', 'source-veth', 'source-host-route', 'source-policy', 'bgp-session', 'rib', 'kernel-route', 'next-hop',
      'destination-ingress', 'destination-pod-eth0', 'destination-pod-default-route', 'destination-veth', 'destination-host-route', 'destination-policy', 'return-route',
      'reply-ingress', 'mtu', 'nat',
    ]);
    expect(formatDiagnosis(d)).toContain('is good');
  });

  // Each break touches one fact as the kernel or the speaker would show it; the hop named must be that one.
  const breaks: [string, string, string, (f: { src: NodeFacts; dst: NodeFacts }) => void][] = [
    ['source pod eth0 down', 'source-pod-eth0', 'node-1', ({ src }) => void (src.local.eth0!.up = false)],
    ['source pod not found', 'source-pod-eth0', 'node-1', ({ src }) => void delete src.local.netns],
    ['no default route in the pod', 'source-pod-default-route', 'node-1', ({ src }) => void delete src.local.defaultGateway],
    ['ARP for the gateway failed', 'source-pod-default-route', 'node-1', ({ src }) => void (src.local.gatewayNeighbor = 'FAILED')],
    ['source veth without proxy ARP', 'source-veth', 'node-1', ({ src }) => void (src.local.veth!.proxyArp = 0)],
    ['session not Established', 'bgp-session', 'node-1', ({ src }) => void (src.peers[0]!.state = 'Active')],
    ['prefix refused by the import filter', 'rib', 'node-1', ({ src }) => void (src.remote.rib = { importAllowed: false })],
    ['prefix never received', 'rib', 'node-1', ({ src }) => void (src.remote.rib = { importAllowed: true })],
    ['a blackhole shadows the route', 'kernel-route', 'node-1', ({ src }) => {
      src.remote.route = { dst: `${TO}`, type: 'blackhole', gateways: [], protocol: 'boot' };
      src.remote.routeGet = { ok: false, error: 'Invalid argument' };
    }],
    ['route programmed elsewhere (via the default)', 'kernel-route', 'node-1', ({ src }) => {
      src.remote.route = { dst: 'default', type: 'unicast', gateways: ['192.0.2.254'], dev: 'eth0' };
    }],
    ['next hop behind a gateway', 'next-hop', 'node-1', ({ src }) => void (src.remote.nextHops[0]!.routeGet.gateway = '192.0.2.254')],
    ['strict rp_filter on the destination', 'destination-ingress', 'node-2', ({ dst }) => {
      dst.remote.ingress!.rpFilter = 1;
      dst.remote.ingress!.routeGet = { ok: false, error: 'Invalid argument' };
    }],
    ['destination veth down', 'destination-veth', 'node-2', ({ dst }) => {
      dst.local.veth!.up = false;
      delete dst.local.hostRoute;
      dst.remote.ingress!.routeGet = dst.remote.ingress!.unvalidated = { ok: false, error: 'Invalid argument' };
    }],
    ['destination host route deleted', 'destination-host-route', 'node-2', ({ dst }) => void delete dst.local.hostRoute],
    ['destination pod eth0 down', 'destination-pod-eth0', 'node-2', ({ dst }) => void (dst.local.eth0!.up = false)],
    ['no route back', 'return-route', 'node-2', ({ dst }) => {
      delete dst.remote.route;
      dst.remote.routeGet = { ok: false, error: 'Network is unreachable' };
    }],
    ['strict rp_filter on the source for the reply', 'reply-ingress', 'node-1', ({ src }) => void (src.remote.ingress!.routeGet = { ok: false, error: 'Invalid argument' })],
    ['pod MTU above the uplink', 'mtu', 'node-1', ({ src }) => void (src.remote.ingress!.mtu = 1450)],
  ];

  it.each(breaks)('%s: names %s on %s', (_, id, nodeName, mutate) => {
    const facts = healthy();
    mutate(facts);
    const d = run(facts.src, facts.dst);
    expect(d.ok).toBe(false);
    expect(d.firstBroken).toMatchObject({ id, node: nodeName, status: 'FAIL' });
    expect(d.firstBroken!.fix).toBeTruthy();
    expect(d.summary).toMatch(new RegExp(`^The path ${FROM} → ${TO} breaks at ${nodeName}: .*Fix: `));
  });

  it('a kernel route missing is the agent not programming it: the default route that catches the packets is not to be deleted', () => {
    const { src, dst } = healthy();
    src.remote.route = { dst: 'default', type: 'unicast', gateways: ['192.0.2.254'], dev: 'eth0' };
    const wider = run(src, dst).firstBroken!;
    expect(wider).toMatchObject({ id: 'kernel-route' });
    expect(wider.fix).toMatch(/has not programmed 10\.244\.2\.0\/24/);
    src.remote.route = { dst: `${TO}`, type: 'unicast', gateways: ['192.0.2.9'], dev: 'eth0', protocol: 'static' };
    expect(run(src, dst).firstBroken!.fix).toBe(`route ${TO} (proto static) shadows Lightly's: delete it`);
  });

  it('an unreachable destination agent: a failed check saying what to run there', () => {
    const { src } = healthy();
    const d = diagnose(FROM, TO, src, { unreachable: 'cannot reach the lightly agent', node: 'node-2', fix: 'run this on node-2 and pass its output with --dest-facts FILE: lightlyctl doctor-facts 10.244.2.2 10.244.1.2' });
    expect(d.firstBroken).toMatchObject({ id: 'destination-agent', node: 'node-2' });
    expect(d.firstBroken!.fix).toContain('lightlyctl doctor-facts');
  });

  it('pods on the same node: no BGP, next hop or ingress checks', () => {
    const { src } = healthy();
    const d = diagnose(FROM, '10.244.1.3', src, { facts: { ...src, local: { ...src.local, ip: '10.244.1.3' } } });
    expect(d.ok).toBe(true);
    expect(d.checks.map((c) => c.id)).not.toContain('bgp-session');
    expect(d.checks.map((c) => c.id)).not.toContain('destination-ingress');
  });

  it('natOutgoing: an address outside the cluster is masqueraded, one inside is not (never a failure)', () => {
    const { src, dst } = healthy();
    src.natOutgoing = true;
    expect(run(src, dst).checks.find((c) => c.id === 'nat')).toMatchObject({ status: 'ok', evidence: expect.stringContaining('not masqueraded') });
  });

  it('any MTU the whole path shares is fine; one hop below the pods is not', () => {
    fc.assert(fc.property(fc.integer({ min: 576, max: 9000 }), (mtu) => {
      const { src, dst } = healthy();
      for (const f of [src, dst]) {
        f.local.eth0!.mtu = mtu;
        f.remote.ingress!.mtu = mtu;
      }
      if (!run(src, dst).ok) return false;
      dst.remote.ingress!.mtu = mtu - 1;
      return run(src, dst).firstBroken?.id === 'mtu';
    }));
  });

  describe('network policy verdicts (Kubernetes NetworkPolicy semantics: a selected pod takes what any selecting policy allows)', () => {
    // x/a on node-1 (FROM) talks to y/b on node-2 (TO); each node's verdicts come from its own compiled model, as in the agent.
    const pods = [
      slimPod({ metadata: { namespace: 'x', name: 'a', labels: { app: 'a' } }, spec: { nodeName: 'node-1' }, status: { podIP: FROM } }),
      slimPod({ metadata: { namespace: 'y', name: 'b', labels: { app: 'b' } }, spec: { nodeName: 'node-2', containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] }, status: { podIP: TO } }),
    ];
    const namespaces = ['x', 'y'].map((name) => slimNamespace({ metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } }));
    const policy = (namespace: string, name: string, spec: Record<string, unknown>) => slimNetworkPolicy({ metadata: { namespace, name }, spec });
    const withPolicies = (policies: ReturnType<typeof policy>[], port?: string) => {
      const facts = healthy();
      const flow = port ? { port: Number(port.split('/')[0]), protocol: (port.split('/')[1] ?? 'tcp').toUpperCase() as 'TCP' | 'UDP' } : undefined;
      facts.src.policy = policyFacts(compileNode('node-1', { pods, namespaces, policies }), pods, FROM, TO, flow);
      facts.dst.policy = policyFacts(compileNode('node-2', { pods, namespaces, policies }), pods, TO, FROM, flow);
      return diagnose(FROM, TO, facts.src, { facts: facts.dst }, port);
    };
    const denyIngress = policy('y', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });

    it('no policy enforced (standalone): the policy hops say so and pass', () => {
      const { src, dst } = healthy();
      src.policy = dst.policy = { enforced: false, reason: 'this node enforces no NetworkPolicy (standalone mode, or networkPolicy.enabled: false)' };
      const d = run(src, dst);
      expect(d.ok).toBe(true);
      expect(d.checks.filter((c) => c.id.endsWith('-policy'))).toEqual([
        expect.objectContaining({ id: 'source-policy', status: 'ok', evidence: expect.stringMatching(/^not enforced: .*standalone/) }),
        expect.objectContaining({ id: 'destination-policy', status: 'ok', evidence: expect.stringMatching(/^not enforced/) }),
      ]);
    });

    it('pods selected by no policy: open in both directions', () => {
      const d = withPolicies([policy('y', 'only-c', { podSelector: { matchLabels: { app: 'c' } }, policyTypes: ['Ingress'] })]);
      expect(d.ok).toBe(true);
      expect(d.checks.find((c) => c.id === 'destination-policy')!.evidence).toBe('open: y/b is selected by no ingress policy');
    });

    it('default deny ingress on the destination: the destination policy hop is the first broken one, with the fix', () => {
      const d = withPolicies([denyIngress]);
      expect(d.firstBroken).toMatchObject({ id: 'destination-policy', node: 'node-2', title: 'network policy: ingress to y/b from x/a (any port)' });
      expect(d.firstBroken!.evidence).toBe('denied: selected by y/deny-ingress (default deny ingress)');
      expect(d.firstBroken!.fix).toBe('allow it with a NetworkPolicy in namespace y selecting y/b with an ingress rule from podSelector {app: a} with namespaceSelector {kubernetes.io/metadata.name: x} on the ports it needs (lightlyctl policy y/b shows what selects it)');
      expect(d.summary).toMatch(/^The path 10\.244\.1\.2 → 10\.244\.2\.2 breaks at node-2: network policy: ingress to y\/b from x\/a/);
      expect(d.checks.find((c) => c.id === 'source-policy')).toMatchObject({ status: 'ok' });
    });

    it('default deny egress on the source: named on node-1 before any hop of the destination', () => {
      const facts = withPolicies([policy('x', 'deny-egress', { podSelector: { matchLabels: { app: 'a' } }, policyTypes: ['Egress'] }), denyIngress]);
      expect(facts.firstBroken).toMatchObject({ id: 'source-policy', node: 'node-1', title: 'network policy: egress from x/a to y/b (any port)' });
      expect(facts.firstBroken!.evidence).toBe('denied: selected by x/deny-egress (default deny egress)');
      expect(facts.firstBroken!.fix).toContain('selecting x/a with an egress rule to podSelector {app: b} with namespaceSelector {kubernetes.io/metadata.name: y}');
    });

    it('allowed by one of two selecting policies: the path is good and the evidence names the rule that allows', () => {
      const fromX = policy('y', 'from-x', { podSelector: { matchLabels: { app: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } }] }] });
      const d = withPolicies([denyIngress, fromX]);
      expect(d.ok).toBe(true);
      expect(d.checks.find((c) => c.id === 'destination-policy')!.evidence).toBe('allowed by y/from-x ingress[0] on any port; selected by y/deny-ingress (default deny ingress), y/from-x (1 ingress rule)');
      // The same rule with a podSelector that x/a does not match allows nothing.
      const fromOthers = policy('y', 'from-x', { podSelector: { matchLabels: { app: 'b' } }, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'z' } } }] }] });
      expect(withPolicies([denyIngress, fromOthers]).firstBroken).toMatchObject({ id: 'destination-policy', evidence: 'denied: selected by y/deny-ingress (default deny ingress), y/from-x (1 ingress rule); no rule allows x/a' });
    });

    it('a port-specific rule: any traffic passes, the port it names passes, another port is denied', () => {
      const tcp80 = policy('y', 'web', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 80 }, { port: 'http' }] }] });
      expect(withPolicies([tcp80]).ok).toBe(true);
      expect(withPolicies([tcp80]).checks.find((c) => c.id === 'destination-policy')!.evidence).toContain('on TCP 80, named ports');
      expect(withPolicies([tcp80], '80/tcp').ok).toBe(true);
      expect(withPolicies([tcp80], '8080/tcp').ok).toBe(true); // the pod's named port `http`
      const d = withPolicies([tcp80], '80/udp');
      expect(d.port).toBe('80/udp');
      expect(d.firstBroken).toMatchObject({ id: 'destination-policy', title: 'network policy: ingress to y/b from x/a (UDP 80)', evidence: 'denied: selected by y/web (1 ingress rule); no rule allows x/a on UDP 80' });
      expect(d.firstBroken!.fix).toContain('on UDP 80');
      expect(formatDiagnosis(d)).toContain('doctor 10.244.1.2 → 10.244.2.2 port 80/udp');
    });

    it('an ipBlock peer and the kernel evidence: the drop rule named in the evidence', () => {
      const blocks = policy('y', 'blocks', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.1.0/24'] } }] }] });
      const facts = healthy();
      const compiled = compileNode('node-2', { pods, namespaces, policies: [blocks] });
      const v = policyFacts(compiled, [pods[1]!], TO, FROM); // x/a unknown to this view: an ipBlock is the fix
      expect(v).toMatchObject({ ingress: { allowed: false } });
      if (!('ingress' in v)) throw new Error('synced facts expected');
      facts.dst.policy = { ...v, ingress: { ...v.ingress, kernel: 'chain ingress of inet lightly-policy: counter packets 3 bytes 252 drop comment "isolated for ingress, no policy allows" # handle 9', dropped: 3 } };
      const d = diagnose(FROM, TO, facts.src, { facts: facts.dst });
      expect(d.firstBroken!.evidence).toMatch(/no rule allows 10\.244\.1\.2; the kernel's drop rule has dropped 3 packets so far; chain ingress of inet lightly-policy: counter packets 3 bytes 252 drop .*# handle 9$/);
      expect(d.firstBroken!.fix).toContain('ingress rule from ipBlock 10.244.1.2/32');
      expect(nodeFactsSchema.parse(facts.dst)).toEqual(facts.dst);
    });
  });

  describe('over IPv6 (dual-stack pods, --family 6): the same hops with IPv6 facts', () => {
    const run6 = (src: NodeFacts, dst: NodeFacts, port?: string) => diagnose(FROM6, TO6, src, { facts: dst }, port);

    it('a healthy IPv6 path: the same checks in the same order, gateway by NDP, forwarding instead of rp_filter', () => {
      const { src, dst } = healthy6();
      expect(nodeFactsSchema.parse(src)).toEqual(src);
      const d = run6(src, dst);
      expect(d.summary).toBe(`The path ${FROM6} → ${TO6} is good: every hop checked out.`);
      expect(d.checks.map((c) => c.id)).toEqual(run(healthy().src, healthy().dst).checks.map((c) => c.id));
      const byId = (id: string) => d.checks.find((c) => c.id === id)!;
      expect(byId('source-pod-default-route')).toMatchObject({ title: 'source pod: default route and gateway neighbour (NDP)', evidence: 'default via fe80::ecee:eeff:feee:eeee dev eth0; neighbour REACHABLE' });
      expect(byId('source-veth').title).toBe("host veth lxc111: up with the gateway's address fe80::ecee:eeff:feee:eeee");
      expect(byId('destination-ingress').title).toBe(`node-2 forwards ${FROM6} → ${TO6} from eth0 (net.ipv6.conf.all.forwarding=1)`);
      expect(byId('kernel-route').evidence).toBe('fd00:10:244:2::/64 via 2001:db8:2::2 dev eth0 proto lightly; ip route get fd00:10:244:2::2: via 2001:db8:2::2 dev eth0');
      expect(d.checks.map((c) => `${c.title} ${c.evidence}`).join('\n')).not.toMatch(/rp_filter|proxy_arp|ARP\b/);
    });

    const breaks6: [string, string, string, (f: { src: NodeFacts; dst: NodeFacts }) => void][] = [
      ['no IPv6 default route in the pod', 'source-pod-default-route', 'node-1', ({ src }) => void delete src.local.defaultGateway],
      ['neighbour discovery for the gateway failed', 'source-pod-default-route', 'node-1', ({ src }) => void (src.local.gatewayNeighbor = 'FAILED')],
      ["the host veth lacks the gateway's link-local address", 'source-veth', 'node-1', ({ src }) => void (src.local.veth!.linkLocal = [])],
      ['source host /128 route deleted', 'source-host-route', 'node-1', ({ src }) => void delete src.local.hostRoute],
      ['the learned IPv6 route deleted', 'kernel-route', 'node-1', ({ src }) => {
        delete src.remote.route;
        src.remote.routeGet = { ok: false, error: 'Network is unreachable' };
      }],
      ['the kernel route via a link-local next hop only', 'kernel-route', 'node-1', ({ src }) => {
        src.remote.route!.gateways = ['fe80::1'];
        src.remote.rib.best!.nextHop = 'fe80::1';
      }],
      ['IPv6 forwarding off on the destination', 'destination-ingress', 'node-2', ({ dst }) => void (dst.remote.ingress!.forwarding6 = 0)],
      ['destination host /128 route deleted', 'destination-host-route', 'node-2', ({ dst }) => void delete dst.local.hostRoute],
      ['no IPv6 route back', 'return-route', 'node-2', ({ dst }) => {
        delete dst.remote.route;
        dst.remote.routeGet = { ok: false, error: 'Network is unreachable' };
      }],
      ['IPv6 forwarding off on the source (the replies)', 'reply-ingress', 'node-1', ({ src }) => void (src.remote.ingress!.forwarding6 = 0)],
    ];

    it.each(breaks6)('%s: names %s on %s', (_, id, nodeName, mutate) => {
      const facts = healthy6();
      mutate(facts);
      const d = run6(facts.src, facts.dst);
      expect(d.firstBroken, d.summary).toMatchObject({ id, node: nodeName, status: 'FAIL' });
      expect(d.firstBroken!.fix).toBeTruthy();
      expect(d.firstBroken!.fix).not.toMatch(/rp_filter|proxy_arp|net\.ipv4/);
    });

    it('the fixes name IPv6 things: the /128 host route, NDP, the forwarding sysctl, the global next hop', () => {
      const fixOf = (mutate: (f: { src: NodeFacts; dst: NodeFacts }) => void) => {
        const f = healthy6();
        mutate(f);
        return run6(f.src, f.dst).firstBroken!;
      };
      const host = fixOf(({ dst }) => void delete dst.local.hostRoute);
      expect(host.evidence).toBe(`no route for ${TO6}/128 on node-2`);
      expect(host.fix).toContain(`ip route replace ${TO6}/128 dev lxc222 scope link proto lightly`);
      expect(fixOf(({ src }) => void (src.local.gatewayNeighbor = 'FAILED')).fix).toBe('the host veth does not answer neighbour solicitations for fe80::ecee:eeff:feee:eeee: check that it holds that address (ip -6 addr show dev lxc111)');
      expect(fixOf(({ src }) => void (src.local.veth!.linkLocal = [])).fix).toBe('give the veth the pods\' gateway address: ip -6 addr add fe80::ecee:eeff:feee:eeee/64 dev lxc111 (or re-create the pod)');
      expect(fixOf(({ dst }) => void (dst.remote.ingress!.forwarding6 = 0)).fix).toBe('node-2 forwards no IPv6 packet: sysctl -w net.ipv6.conf.all.forwarding=1 there');
      expect(fixOf(({ src }) => {
        src.remote.route!.gateways = ['fe80::1'];
        src.remote.rib.best!.nextHop = 'fe80::1';
      }).fix).toMatch(/link-local next hop only: .*global IPv6 next hop \(RFC 2545 §3\)/);
    });

    it('policy verdicts for the IPv6 addresses, from the model that keeps them (an ipBlock fix is a /128)', () => {
      const dual = (ns: string, name: string, node: string, v4: string, v6: string) =>
        slimPod({ metadata: { namespace: ns, name, labels: { app: name } }, spec: { nodeName: node }, status: { podIPs: [{ ip: v4 }, { ip: v6 }] } });
      const pods = [dual('x', 'a', 'node-1', FROM, FROM6), dual('y', 'b', 'node-2', TO, TO6)];
      const namespaces = ['x', 'y'].map((name) => slimNamespace({ metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } }));
      const blocks = slimNetworkPolicy({ metadata: { namespace: 'y', name: 'v6-blocks' }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'fd00:10:244::/48', except: ['fd00:10:244:1::/64'] } }] }] } });
      const verdicts = (policies: ReturnType<typeof slimNetworkPolicy>[], known = pods) => {
        const f = healthy6();
        f.src.policy = policyFacts(compileNode('node-1', { pods, namespaces, policies }), known, FROM6, TO6);
        f.dst.policy = policyFacts(compileNode('node-2', { pods, namespaces, policies }), known, TO6, FROM6);
        return run6(f.src, f.dst);
      };
      const denied = verdicts([blocks], [pods[1]!]);
      expect(denied.firstBroken).toMatchObject({ id: 'destination-policy', node: 'node-2', evidence: `denied: selected by y/v6-blocks (1 ingress rule); no rule allows ${FROM6}` });
      expect(denied.firstBroken!.fix).toContain(`ingress rule from ipBlock ${FROM6}/128`);
      const open = slimNetworkPolicy({ metadata: { namespace: 'y', name: 'v6-blocks' }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'fd00:10:244::/48' } }] }] } });
      const d = verdicts([open]);
      expect(d.ok).toBe(true);
      expect(d.checks.find((c) => c.id === 'destination-policy')!.evidence).toBe('allowed by y/v6-blocks ingress[0] on any port; selected by y/v6-blocks (1 ingress rule)');
    });
  });
});
