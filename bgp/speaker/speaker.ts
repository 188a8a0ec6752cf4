// The speaker: peers (sessions) + RIB + policy. Learns, decides, advertises; reports best-route changes.
import { EventEmitter } from 'node:events';
import { type Server, type Socket, createServer } from 'node:net';
import {
  AFI,
  type Afi,
  BGP_MAX_MESSAGE_LENGTH,
  CeaseSubcode,
  type CodecContext,
  ErrorCode,
  type Family,
  type PathAttributes,
  type Prefix,
  SAFI_UNICAST,
  type UpdateMessage,
  encodeMessage,
  endOfRib,
  endOfRibFamily,
} from '../codec/index.js';
import type { State } from '../fsm/fsm.js';
import { type BestChange, LOCAL, type PeerInfo, Rib, type RibSlots, type Route } from '../rib/rib.js';
import { ImportFilter, contains, exportAttributes, loopReason } from '../policy/policy.js';
import { type Established, Session, type TcpMd5, addressesOn, socketFd } from '../session/session.js';
import { type ConfiguredNextHops, receivedNextHop, selfNextHops } from './next-hop-self.js';

export interface SpeakerConfig {
  asn: number;
  routerId: string;
  listenAddress: string;
  /** 0 picks a free port (tests); undefined: do not listen. */
  listenPort?: number;
  holdTime: number;
  connectRetrySeconds: number;
  gracefulRestart: {
    enabled: boolean;
    restartTime: number;
    /** We are coming back from a restart (RFC 4724 §4.1): selection waits for the peers' End-of-RIB. */
    restarting: boolean;
    /**
     * How long selection waits at most. Default: 120 s, or our restart time when shorter, since
     * peers keep our routes only that long.
     */
    selectionDeferralTime?: number;
  };
  importCIDRs: Prefix[];
  allowDefaultRoute: boolean;
  /** Refused whatever importCIDRs say (policy.ts). */
  rejectCIDRs?: Prefix[];
  maxPrefixes: number;
  clusterId?: string;
  maxPaths?: number;
  /** Where the RIB keeps its candidates: the route programmer's table in the agent (one record per prefix); its own otherwise. */
  ribSlots?: RibSlots;
  /** Where the speaker reports what it drops or resets (a pino logger fits); silent when absent. */
  log?: SpeakerLog;
  /** Whether next hops resolve through the kernel's routing table; without it every one does. */
  nextHops?: NextHopResolver;
  /** Idle seconds before TCP keepalive probes on BGP connections (default 30; tests shorten it). */
  tcpKeepaliveIdleSeconds?: number;
  /** TCP MD5 (RFC 2385) for peers with a password; without it such peers cannot connect. */
  tcpMd5?: TcpMd5;
  /**
   * Our next hop for a family the session's own address is not of (IPv6 routes over an IPv4
   * session): configured here, else found on the session's link (see selfNextHops).
   */
  nextHopSelf?: ConfiguredNextHops;
}

/**
 * How a next hop resolves (RFC 4271 §9.1.2.1): reachable on a connected subnet or by a route other
 * than a default route, unreachable, or one of our own addresses (semantically incorrect, §6.3).
 */
export type NextHopState = 'reachable' | 'unreachable' | 'local';

/** The narrow port the agent gives: resolve one next hop now. Changes are signalled with `nextHopsChanged`. */
export interface NextHopResolver {
  resolve(nextHop: string): NextHopState;
}

/** The part of a logger the speaker uses: events with fields. */
export interface SpeakerLog {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const SILENT: SpeakerLog = { warn: () => undefined, error: () => undefined };

export interface PeerSettings {
  address: string;
  asn: number;
  port?: number;
  holdTime?: number;
  passive?: boolean;
  routeReflectorClient?: boolean;
  maxPrefixes?: number;
  /** Carried through to snapshots (node-mesh, global, node-specific). */
  type?: string;
  /** TCP MD5 key (RFC 2385), on our connections and on the listener for this address. Never in a snapshot. */
  password?: string;
  /** The address families offered to this peer (RFC 4760 capability); default both unicast ones. */
  families?: Afi[];
}

/** One negotiated family of a peer, with its prefix counts. */
export interface FamilySnapshot {
  /** `ipv4-unicast` or `ipv6-unicast`, as GoBGP and FRR name them. */
  family: string;
  prefixesReceived: number;
  prefixesAdvertised: number;
}

export interface PeerSnapshot {
  address: string;
  asn: number;
  type?: string;
  state: State;
  uptimeSeconds: number;
  prefixesReceived: number;
  prefixesAdvertised: number;
  /** The families negotiated on the session (none unless Established), each with its counts. */
  families: FamilySnapshot[];
  info?: string;
  /** The session is signed with TCP MD5 (whether the key matches the peer's, only the peer knows). */
  tcpMd5?: boolean;
}

/**
 * A best-route change as the agent installs it: the ECMP next hops, none when gone or our own.
 * `nextHops` may be shared with other changes of the same event: read it, do not modify it.
 */
export interface RouteChange {
  prefix: Prefix;
  nextHops: string[];
}

interface Peer {
  settings: PeerSettings;
  info: PeerInfo;
  session: Session;
  established?: Established;
  /** prefix → key of the attributes last sent, for minimal updates and the advertised count. */
  adjOut: Map<Prefix, string>;
  /** Prefixes whose UPDATE the full queue refused (UNSENT in adjOut): sent as they stand on drain. */
  unsent: Set<Prefix>;
  /** Address families asked for again (ROUTE-REFRESH) and not yet answered: one answer for many asks. */
  refresh: Set<Afi>;
  refreshTimer?: NodeJS.Timeout;
  lastRefresh: number;
  /** Graceful restart, receiving side: the families whose routes we hold stale, and until when. */
  stale?: { families: Set<4 | 6>; timer: NodeJS.Timeout };
  /** After our restart: the families this peer has yet to send End-of-RIB for; undefined when none is awaited. */
  awaitedEndOfRib?: Set<4 | 6>;
  /** Established at least once: later OPENs to it no longer carry the Restart State bit. */
  wasEstablished?: boolean;
  /** Kinds of misbehaviour already logged for this peer (see warnOnce). */
  warned: Set<string>;
}

/** The Adj-RIB-Out key of a prefix whose UPDATE was refused: the peer may hold anything for it. */
const UNSENT = '';
/** A peer's ROUTE-REFRESH requests are answered at most this often; more in between are merged. */
const REFRESH_INTERVAL_MS = 1000;
/** Prefixes a peer drop visits per event-loop turn: about 10 ms of withdrawals, through to the route reconciler. */
const DROP_SLICE = 2048;

/** Distinct next hops remembered at most (a few MB), whatever peers send. */
const MAX_CACHED_NEXT_HOPS = 65_536;

const IPV4_UNICAST: Family = { afi: AFI.IPv4, safi: SAFI_UNICAST };
const familyOf = (prefix: Prefix): Afi => (prefix.includes(':') ? AFI.IPv6 : AFI.IPv4);
/** The RIB's family number of an AFI. */
const ribFamily = (afi: number): 4 | 6 => (afi === AFI.IPv6 ? 6 : 4);

export class Speaker extends EventEmitter<{ routes: [RouteChange[]]; peerState: [string, State, State]; deferralEnded: [string] }> {
  private readonly rib: Rib;
  private importFilter: ImportFilter;
  private readonly peers = new Map<string, Peer>();
  private server?: Server;
  private originated = new Set<Prefix>();
  private readonly log: SpeakerLog;
  /** Next hop → how it resolved when last asked; the routes' eligibility follows it. */
  private readonly nextHopStates = new Map<string, NextHopState>();
  /** The cache was emptied (a peer sent too many distinct next hops): the next change re-decides everything. */
  private nextHopsForgotten = false;
  /**
   * RFC 4724 §4.1, restarting speaker: set while best-path results are held back (from the kernel
   * and from peers, End-of-RIB included) until every peer has sent its End-of-RIB or the timer ends.
   */
  private deferral?: { timer?: NodeJS.Timeout };
  /** Peer drops under way (dropInSlices): their next slices. */
  private readonly drops = new Set<NodeJS.Immediate>();
  port = 0;

  constructor(readonly config: SpeakerConfig) {
    super();
    this.log = config.log ?? SILENT;
    const resolver = config.nextHops;
    // Without a resolver every next hop is eligible: no check at all on the hot path.
    this.rib = new Rib(config.maxPaths ?? 8, resolver && ((r) => r.source === LOCAL || this.nextHopState(r.nextHop) === 'reachable'), config.ribSlots);
    this.importFilter = new ImportFilter(config);
    if (config.gracefulRestart.enabled && config.gracefulRestart.restarting) this.deferral = {};
  }

  async start(): Promise<void> {
    if (this.deferral && !this.deferral.timer) {
      const gr = this.config.gracefulRestart;
      const seconds = gr.selectionDeferralTime ?? Math.min(120, gr.restartTime);
      this.deferral.timer = setTimeout(() => this.endDeferral('selection deferral timer expired'), seconds * 1000);
    }
    if (this.config.listenPort === undefined) return;
    const server = createServer((socket) => this.onIncoming(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.listenPort, this.config.listenAddress, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // A failed accept(2) (ENOBUFS, EPERM from a firewall) comes as an 'error' on the server: with no
    // listener left it would be thrown, and end the process.
    server.on('error', (err) => this.log.error({ err }, 'bgp listener: accepting a connection failed'));
    this.port = (this.server.address() as { port: number }).port;
    for (const peer of this.peers.values()) this.setListenerKey(peer.settings.address, peer.settings.password ?? '');
  }

  /**
   * The listener's TCP MD5 key for one peer address (empty: none): the kernel checks the peer's SYN
   * against it, and the accepted connection inherits it (RFC 2385 signs every segment, the SYN too).
   */
  private setListenerKey(address: string, key: string): void {
    const fd = this.server && socketFd(this.server);
    if (fd === undefined || (!key && !this.keyed.has(address))) return;
    try {
      if (!this.config.tcpMd5) throw new Error('no TCP MD5 support in this speaker');
      this.config.tcpMd5.setTcpMd5Key(fd, address, key);
      if (key) this.keyed.add(address);
      else this.keyed.delete(address);
    } catch (err) {
      this.log.error({ peer: address, err: (err as Error).message }, 'bgp listener: cannot set the TCP MD5 key for this peer; its connections to us will fail');
    }
  }

  /** Peer addresses that have a TCP MD5 key on the listener. */
  private readonly keyed = new Set<string>();

  private onIncoming(socket: Socket): void {
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const peer = this.peers.get(address);
    if (!peer) {
      socket.destroy(); // not a configured peer
      return;
    }
    peer.session.acceptIncoming(socket);
  }

  setPeers(list: PeerSettings[]): void {
    const wanted = new Map(list.map((p) => [p.address, p]));
    for (const [address, peer] of this.peers) {
      const next = wanted.get(address);
      // RFC 4486: a peer gone from the configuration is 6/3, one whose settings changed 6/6.
      if (!next) this.removePeer(peer, CeaseSubcode.PEER_DECONFIGURED);
      else if (JSON.stringify(next) !== JSON.stringify(peer.settings)) this.removePeer(peer, CeaseSubcode.OTHER_CONFIG_CHANGE);
    }
    for (const settings of list) if (!this.peers.has(settings.address)) this.addPeer(settings);
    this.checkDeferral();
  }

  private addPeer(settings: PeerSettings): void {
    const ebgp = settings.asn !== this.config.asn;
    const families: Family[] = (settings.families ?? [AFI.IPv4, AFI.IPv6]).map((afi) => ({ afi, safi: SAFI_UNICAST }));
    const session = new Session({
      localAsn: this.config.asn, routerId: this.config.routerId, peerAddress: settings.address, peerAsn: settings.asn,
      port: settings.port ?? 179, holdTime: settings.holdTime ?? this.config.holdTime,
      connectRetrySeconds: this.config.connectRetrySeconds, passive: settings.passive ?? false, families,
      ...(this.config.tcpKeepaliveIdleSeconds !== undefined ? { tcpKeepaliveIdleSeconds: this.config.tcpKeepaliveIdleSeconds } : {}),
      ...(settings.password ? { password: settings.password, ...(this.config.tcpMd5 ? { tcpMd5: this.config.tcpMd5 } : {}) } : {}),
      ...(this.config.listenAddress && this.config.listenAddress !== '0.0.0.0' && this.config.listenAddress !== '::' ? { localAddress: this.config.listenAddress } : {}),
      // The Restart State bit only while we still defer selection (RFC 4724 §4.1); see onEstablished.
      ...(this.config.gracefulRestart.enabled ? { gracefulRestart: { restartTime: this.config.gracefulRestart.restartTime, restarting: this.deferral !== undefined } } : {}),
    });
    const peer: Peer = {
      settings, session, adjOut: new Map(), unsent: new Set(), refresh: new Set(), lastRefresh: 0, warned: new Set(),
      info: { id: settings.address, address: settings.address, asn: settings.asn, routerId: settings.address, ebgp, rrClient: settings.routeReflectorClient ?? false },
    };
    this.peers.set(settings.address, peer);
    this.setListenerKey(settings.address, settings.password ?? '');
    session.on('state', (from, to) => this.emit('peerState', settings.address, from, to));
    session.on('established', (e) => this.onEstablished(peer, e));
    session.on('update', (u) => this.onUpdate(peer, u));
    session.on('routeRefresh', (family) => this.refreshRequested(peer, family.afi));
    session.on('drain', () => this.drained(peer));
    session.on('down', () => {
      peer.unsent.clear();
      peer.refresh.clear();
    });
    session.on('fault', (err) => this.log.error({ peer: settings.address, err }, 'bgp session fault: this session is reset, the others go on'));
    session.on('down', (d) => this.onDown(peer, d.silent));
    session.start();
  }

  private removePeer(peer: Peer, subcode: number): void {
    this.peers.delete(peer.settings.address);
    clearTimeout(peer.refreshTimer);
    clearTimeout(peer.stale?.timer);
    peer.session.removeAllListeners();
    if (peer.session.state === 'Established' || peer.session.state === 'OpenConfirm' || peer.session.state === 'OpenSent') {
      peer.session.sendNotificationAndClose(ErrorCode.CEASE, subcode);
    }
    peer.session.stop();
    this.setListenerKey(peer.settings.address, '');
    this.dropInSlices(peer);
    this.checkDeferral();
  }

  setOriginated(prefixes: Prefix[]): void {
    const next = new Set(prefixes);
    const changes: BestChange[] = [];
    for (const p of this.originated) if (!next.has(p)) push(changes, this.rib.withdraw(LOCAL, p));
    for (const p of next) {
      if (!this.originated.has(p)) push(changes, this.rib.upsert({ prefix: p, attrs: { origin: 0, asPath: [] }, nextHop: '', source: LOCAL }));
    }
    this.originated = next;
    this.apply(changes);
  }

  private onEstablished(peer: Peer, e: Established): void {
    peer.established = e;
    peer.info = { ...peer.info, routerId: e.negotiated.open.routerId };
    this.keepStaleOnReturn(peer, e);
    peer.adjOut.clear();
    if (!peer.wasEstablished) {
      peer.wasEstablished = true;
      peer.session.restartDone();
    }
    if (this.deferral) {
      // RFC 4724 §4.1: wait for this peer's End-of-RIB only if it does graceful restart and is
      // not restarting itself; our routes and End-of-RIB go to it when the deferral ends.
      const gr = e.peerGracefulRestart;
      peer.awaitedEndOfRib = gr && !gr.restarting ? new Set(e.families.filter((f) => f.safi === SAFI_UNICAST).map((f) => ribFamily(f.afi))) : undefined;
      this.checkDeferral();
      return;
    }
    this.advertiseAll(peer, true);
  }

  /** Ends the deferral once no configured peer is still awaited (down, or its End-of-RIB to come). */
  private checkDeferral(): void {
    if (!this.deferral) return;
    for (const peer of this.peers.values()) if (!peer.established || (peer.awaitedEndOfRib?.size ?? 0) > 0) return;
    this.endDeferral('End-of-RIB from every peer');
  }

  /** Selection is no longer deferred: the kernel gets every best route, each peer all it should have and End-of-RIB. */
  private endDeferral(reason: string): void {
    if (!this.deferral) return;
    clearTimeout(this.deferral.timer);
    this.deferral = undefined;
    for (const peer of this.peers.values()) peer.session.restartDone();
    const all: BestChange[] = [];
    for (const [prefix, b] of this.rib.bestPaths()) all.push(this.rib.nextHops.change(prefix, b));
    if (all.length) this.emit('routes', all);
    for (const peer of this.peers.values()) {
      if (!peer.established) continue;
      peer.adjOut.clear();
      this.contained(peer, () => this.advertiseAll(peer, true));
    }
    // After the routes: a listener may now drop forwarding state from before the restart that
    // selection did not confirm.
    this.emit('deferralEnded', reason);
  }

  private advertiseAll(peer: Peer, withEndOfRib: boolean): void {
    const changes: BestChange[] = [];
    for (const [prefix, b] of this.rib.bestPaths()) changes.push(this.rib.nextHops.change(prefix, b));
    this.advertise(peer, changes);
    if (withEndOfRib && peer.established) {
      for (const f of peer.established.families) peer.session.sendRaw(endOfRib(f, peer.established.ctx));
    }
  }

  private onUpdate(peer: Peer, u: UpdateMessage): void {
    const eor = endOfRibFamily(u);
    if (eor) {
      // RFC 4724 §4.2: the peer has resent all it has of this family (AFI and SAFI: only unicast is ours).
      // One for a family this session did not negotiate (an unknown AFI among them) says nothing
      // about ours (RFC 4760 §7: ignored).
      if (!peer.established?.families.some((f) => f.afi === eor.afi && f.safi === eor.safi)) return;
      this.sweepStale(peer, ribFamily(eor.afi));
      if (peer.awaitedEndOfRib?.delete(ribFamily(eor.afi))) this.checkDeferral();
      return;
    }
    const source = peer.info.id;
    // Only families this session negotiated are learned (RFC 4760 §6). MP_REACH/MP_UNREACH for
    // another one is ignored, as BIRD does: RFC 4760 §7 has the speaker drop that family's routes
    // and ignore the rest of it for the session, and none of it was ever learned. No reset: the
    // peer's other families stay.
    const negotiated = (family: Family): boolean => peer.established?.families.some((f) => f.afi === family.afi && f.safi === family.safi) ?? false;
    const v4 = negotiated(IPV4_UNICAST);
    const mpUnreach = u.mpUnreach && negotiated(u.mpUnreach.family) ? u.mpUnreach : undefined;
    const mpReach = u.mpReach && negotiated(u.mpReach.family) ? u.mpReach : undefined;
    const ignored = [u.mpReach, u.mpUnreach].find((mp) => mp && !negotiated(mp.family))?.family ?? (!v4 && (u.nlri.length || u.withdrawn.length) ? IPV4_UNICAST : undefined);
    if (ignored) this.warnOnce(peer, `family ${ignored.afi}/${ignored.safi}`, { afi: ignored.afi, safi: ignored.safi }, 'bgp UPDATE for an address family not negotiated: ignored (RFC 4760)');
    const found = new ChangeList((v4 ? u.withdrawn.length + u.nlri.length : 0) + (mpUnreach?.withdrawn.length ?? 0) + (mpReach?.nlri.length ?? 0));
    // Indexed loops on the path of every prefix: no iterator result per prefix in unoptimised code (daemon.ts, onBestRoutes).
    if (v4) for (let i = 0; i < u.withdrawn.length; i++) found.add(this.rib.withdraw(source, u.withdrawn[i]!));
    if (mpUnreach) for (let i = 0; i < mpUnreach.withdrawn.length; i++) found.add(this.rib.withdraw(source, mpUnreach.withdrawn[i]!));
    if (v4) this.learn(peer, u, u.nlri, u.attributes.nextHop ?? '', found);
    if (mpReach?.family.safi === SAFI_UNICAST) this.learn(peer, u, mpReach.nlri, mpReach.nextHops[0] ?? '', found);
    const changes = found.done();
    const limit = peer.settings.maxPrefixes ?? this.config.maxPrefixes;
    if (this.rib.count(peer.info.id) > limit) {
      // RFC 4486: Cease, maximum number of prefixes reached; the peer's routes go with the session.
      // This UPDATE's changes were never reported, and the close may already have dropped the peer's
      // routes: report where each prefix it touched stands now, never the announcements themselves.
      peer.session.sendNotificationAndClose(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES);
      const dropped = this.rib.dropSource(peer.info.id);
      this.apply([...changes.map((c) => this.current(c.prefix)), ...dropped]);
      return;
    }
    this.apply(changes);
  }

  /** The prefix's best route now, as a change to report. */
  private current(prefix: Prefix): BestChange {
    return this.rib.nextHops.change(prefix, this.rib.bestOf(prefix));
  }

  /**
   * Puts the prefixes one UPDATE announces with `nextHop` into the RIB (or takes them out, when
   * unusable). All of them share one Route, holding the UPDATE's attributes as decoded once, and the
   * checks that depend only on the attributes (loops, treat-as-withdraw) are made once per UPDATE.
   */
  private learn(peer: Peer, u: UpdateMessage, prefixes: Prefix[], received: string, changes: ChangeList): void {
    if (prefixes.length === 0) return;
    const nextHop = this.scoped(peer, received);
    const usable = !u.treatAsWithdraw && nextHop !== '' && !this.isOwnAddress(peer, nextHop) && !loopReason(u.attributes, peer.info, this.config);
    const route: Route = { attrs: u.attributes, nextHop, source: peer.info };
    for (let i = 0; i < prefixes.length; i++) {
      const prefix = prefixes[i]!;
      if (usable && this.importFilter.allows(prefix)) changes.add(this.rib.announce(prefix, route));
      else changes.add(this.rib.withdraw(peer.info.id, prefix));
    }
  }

  /**
   * The IPv6 next hop a route is used with (see receivedNextHop): a link-local one alone only on a
   * link-local session, zoned with its link (`fe80::1%eth0`, the form the kernel route needs). One
   * that cannot be used gives '' (the routes are not installed).
   */
  private scoped(peer: Peer, nextHop: string): string {
    if (!nextHop.includes(':')) return nextHop;
    const scoped = receivedNextHop(nextHop, peer.established?.localAddress ?? '', peer.established?.device);
    if (scoped) return scoped;
    this.warnOnce(peer, 'ipv6-next-hop', { nextHop }, 'IPv6 next hop not usable (a link-local one alone off a link-local session, or an IPv4-mapped one; RFC 2545 §3): routes not used');
    return '';
  }

  /** Logs what a peer does wrong once per kind: a full table of it is not a full table of warnings. */
  private warnOnce(peer: Peer, kind: string, fields: object, message: string): void {
    if (peer.warned.has(kind)) return;
    peer.warned.add(kind);
    this.log.warn({ peer: peer.settings.address, ...fields }, message);
  }

  /** RFC 4271 §6.3: a NEXT_HOP that is one of our own addresses is semantically incorrect; the path is ignored. */
  private isOwnAddress(peer: Peer, nextHop: string): boolean {
    return nextHop === peer.established?.localAddress || (this.config.nextHops !== undefined && this.nextHopState(nextHop) === 'local');
  }

  private nextHopState(nextHop: string): NextHopState {
    let state = this.nextHopStates.get(nextHop);
    if (state === undefined) {
      if (this.nextHopStates.size >= MAX_CACHED_NEXT_HOPS) {
        // Bounded whatever peers send; what was forgotten is simply asked again.
        this.nextHopStates.clear();
        this.nextHopsForgotten = true;
      }
      state = this.config.nextHops?.resolve(nextHop) ?? 'reachable';
      this.nextHopStates.set(nextHop, state);
    }
    return state;
  }

  /**
   * The kernel's routing table or addresses changed: next hops are resolved again, and the
   * prefixes using one that flipped go through the decision again (RFC 4271 §9.1.2.1).
   */
  nextHopsChanged(): void {
    this.ownAddressesChanged();
    const resolver = this.config.nextHops;
    if (!resolver) return;
    if (this.nextHopsForgotten) {
      // Which answers changed is unknown: every prefix is decided again, with fresh answers.
      this.nextHopsForgotten = false;
      this.nextHopStates.clear();
      this.apply(this.rib.revalidate());
      return;
    }
    const flipped = new Set<string>();
    for (const [nextHop, before] of this.nextHopStates) {
      const now = resolver.resolve(nextHop);
      if (now === before) continue;
      this.nextHopStates.set(nextHop, now);
      flipped.add(nextHop);
    }
    this.apply(this.rib.revalidate(flipped));
  }

  /**
   * Our addresses may have changed: a session whose link gained or lost one has its next hops of ours
   * worked out again, and what changed is sent (the Adj-RIB-Out key holds the next hops): IPv6 routes
   * go to an IPv4 peer once the link has a global IPv6 address, and are withdrawn when it goes.
   */
  private ownAddressesChanged(): void {
    for (const peer of this.peers.values()) {
      const e = peer.established;
      if (!e?.device) continue;
      const now = addressesOn(e.device);
      if (now.length === e.linkAddresses.length && now.every((a, i) => a === e.linkAddresses[i])) continue;
      e.linkAddresses = now;
      if (!this.deferral) this.contained(peer, () => this.advertiseAll(peer, false)); // else all goes when it ends
    }
  }

  /**
   * The session ended. `silent`: the TCP connection was lost without a NOTIFICATION, the only way a
   * restarting peer leaves (RFC 4724 §4.2). Its routes are then kept, stale, for the restart time
   * it announced, but only when this session negotiated graceful restart (both sides sent the
   * capability) and only for the families it listed; everything else goes at once.
   */
  private onDown(peer: Peer, silent: boolean): void {
    const ended = peer.established;
    peer.established = undefined;
    peer.adjOut.clear();
    // Not established (lost in OpenSent/OpenConfirm): no routes came over it; a restart timer
    // already running keeps running (the peer has not come back yet).
    if (!ended) return;
    const gr = this.config.gracefulRestart.enabled && silent ? ended.peerGracefulRestart : undefined;
    const families = new Set((gr?.families ?? []).filter((f) => f.safi === SAFI_UNICAST).map((f) => ribFamily(f.afi)));
    if (!gr || gr.restartTime === 0 || families.size === 0) {
      clearTimeout(peer.stale?.timer);
      peer.stale = undefined;
      this.dropInSlices(peer);
      return;
    }
    const changes: BestChange[] = [];
    for (const family of [4, 6] as const) if (!families.has(family)) changes.push(...this.rib.dropSource(peer.info.id, family));
    this.rib.markStale(peer.info.id, families);
    // Counted from the session loss; coming back does not stop it, only End-of-RIB does (per family).
    // Lost again before that End-of-RIB: the timer of the first loss keeps running, or a peer
    // restarting faster than its restart time would keep routes it never resent stale forever.
    const timer = peer.stale?.timer ?? setTimeout(() => this.sweepStale(peer), gr.restartTime * 1000);
    peer.stale = { families, timer };
    this.apply(changes);
  }

  /**
   * The peer is back (RFC 4724 §4.2): stale routes of a family go at once when its new OPEN has no
   * graceful restart capability, does not list the family, or lists it without the F bit
   * (forwarding state not preserved), or did not negotiate it. The others wait for End-of-RIB or the restart timer.
   */
  private keepStaleOnReturn(peer: Peer, e: Established): void {
    if (!peer.stale) return;
    const gr = this.config.gracefulRestart.enabled ? e.peerGracefulRestart : undefined;
    for (const family of [...peer.stale.families]) {
      const preserved = gr?.families.some((f) => ribFamily(f.afi) === family && f.safi === SAFI_UNICAST && f.forwardingPreserved);
      // A family this session did not negotiate gets no End-of-RIB over it (ignored, see onUpdate): its routes go now.
      const negotiated = e.families.some((f) => ribFamily(f.afi) === family && f.safi === SAFI_UNICAST);
      if (!preserved || !negotiated) this.sweepStale(peer, family);
    }
  }

  /** Drops the peer's stale routes of one family (or all), and forgets the family's restart. */
  private sweepStale(peer: Peer, family?: 4 | 6): void {
    if (!peer.stale) return;
    const changes = this.rib.sweepStale(peer.info.id, family);
    if (family) peer.stale.families.delete(family);
    if (!family || peer.stale.families.size === 0) {
      clearTimeout(peer.stale.timer);
      peer.stale = undefined;
    }
    this.apply(changes);
  }

  /**
   * Withdraws every route the peer has given so far, DROP_SLICE prefixes per event-loop turn, so a
   * full table going does not hold keepalives and the status socket for its whole length. Routes
   * carry the peer's `info` of when they were learned: it is replaced here by a copy no route carries,
   * and every route of the peer goes whose `info` is not the peer's current one when its slice runs.
   * So what the peer sends once it is back (mid-drop) stays, and routes of any earlier session (stale
   * under graceful restart: each Established session has its own `info`) go with the rest.
   */
  private dropInSlices(peer: Peer): void {
    const owner = peer.info;
    peer.info = { ...owner };
    const slices = this.rib.dropSourceInSlices(owner.id, (route) => route.source !== peer.info, DROP_SLICE);
    const step = (): void => {
      const next = slices.next();
      if (next.done) return;
      this.apply(next.value);
      const immediate = setImmediate(() => {
        this.drops.delete(immediate);
        step();
      });
      this.drops.add(immediate);
    };
    step();
  }

  private apply(changes: BestChange[]): void {
    if (changes.length === 0 || this.deferral) return;
    this.emit('routes', changes);
    for (const peer of this.peers.values()) if (peer.established) this.contained(peer, () => this.advertise(peer, changes));
  }

  /** Sending to one peer that fails (a bug of ours included) ends at most that peer's session, never the others'. */
  private contained(peer: Peer, send: () => void): void {
    try {
      send();
    } catch (err) {
      this.log.error({ peer: peer.settings.address, err }, 'bgp advertise failed: this session is reset, the others go on');
      peer.session.sendNotificationAndClose(ErrorCode.CEASE, 0);
    }
  }

  /** Sends `peer` what changed for it, grouping prefixes with the same attributes into few UPDATEs. */
  private advertise(peer: Peer, changes: BestChange[]): void {
    const e = peer.established!;
    const speaksV4 = e.families.some((f) => f.afi === AFI.IPv4);
    const speaksV6 = e.families.some((f) => f.afi === AFI.IPv6);
    const exports = new ExportCache((route, afi) => this.exportFor(peer, route, afi));
    const withdraw: Prefix[] = [];
    const groups = new Map<string, Group>();
    let tooLarge: Group | undefined;
    let notSent = 0;
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i]!;
      const afi = familyOf(c.prefix);
      if (!(afi === AFI.IPv4 ? speaksV4 : speaksV6)) continue;
      const out = c.best ? exports.get(c.best, afi) : undefined;
      if (!out) {
        if (peer.adjOut.delete(c.prefix)) withdraw.push(c.prefix);
        continue;
      }
      if (peer.adjOut.get(c.prefix) === out.key) continue;
      let g = groups.get(out.key);
      if (!g) groups.set(out.key, (g = group(out, afi, e.ctx, c.prefix)));
      if (g.room < MAX_PREFIX_BYTES[afi]) {
        // Cannot fit one UPDATE for this peer (RFC 4271 §4.3): not sent, and what it had is withdrawn.
        if (peer.adjOut.delete(c.prefix)) withdraw.push(c.prefix);
        tooLarge = g;
        notSent++;
        continue;
      }
      peer.adjOut.set(c.prefix, out.key);
      g.prefixes.push(c.prefix);
    }
    if (tooLarge) {
      this.log.warn({ peer: peer.settings.address, prefix: tooLarge.first, prefixes: notSent, bytes: BGP_MAX_MESSAGE_LENGTH - tooLarge.room }, 'route does not fit one UPDATE for this peer: not advertised to it');
    }
    const send = (frame: Buffer, prefixes: Prefix[]): void => {
      if (peer.session.sendUpdate(frame)) return;
      // The queue to the peer is full: what it holds for these is unknown until we send them again.
      for (const prefix of prefixes) {
        peer.adjOut.set(prefix, UNSENT);
        peer.unsent.add(prefix);
      }
    };
    const v4 = withdraw.filter((p) => familyOf(p) === AFI.IPv4);
    const v6 = withdraw.filter((p) => familyOf(p) === AFI.IPv6);
    const unreach4 = (chunk: Prefix[]): UpdateMessage => ({ type: 2, withdrawn: chunk, attributes: {}, nlri: [] });
    const unreach6 = (chunk: Prefix[]): UpdateMessage => ({ type: 2, withdrawn: [], attributes: {}, nlri: [], mpUnreach: { family: { afi: AFI.IPv6, safi: SAFI_UNICAST }, withdrawn: chunk } });
    if (v4.length) packUpdates(v4, unreach4, roomFor(unreach4, e.ctx), e.ctx, send);
    if (v6.length) packUpdates(v6, unreach6, roomFor(unreach6, e.ctx), e.ctx, send);
    for (const g of groups.values()) if (g.prefixes.length) packUpdates(g.prefixes, g.make, g.room, e.ctx, send);
  }

  /** The queue to the peer has room again: what it refused goes out as it stands now, then any refresh owed. */
  private drained(peer: Peer): void {
    if (!peer.established) return;
    const owed = [...peer.unsent].map((prefix) => this.current(prefix));
    peer.unsent.clear();
    this.contained(peer, () => this.advertise(peer, owed));
    if (peer.refresh.size && !peer.refreshTimer && !peer.session.congested) this.answerRefresh(peer);
  }

  /**
   * RFC 2918: the peer asks for a family again. Requests are merged: at most one answer per
   * REFRESH_INTERVAL_MS, none while the queue to the peer is full, so a flood of them costs one resend.
   */
  private refreshRequested(peer: Peer, afi: Afi): void {
    if (this.deferral) return; // everything goes to it when the deferral ends
    peer.refresh.add(afi);
    if (peer.refreshTimer || peer.session.congested) return; // an answer is already on its way, or waits for drain
    const wait = Math.max(0, peer.lastRefresh + REFRESH_INTERVAL_MS - Date.now());
    peer.refreshTimer = setTimeout(() => {
      peer.refreshTimer = undefined;
      if (this.peers.get(peer.settings.address) === peer && !peer.session.congested) this.answerRefresh(peer);
    }, wait);
    peer.refreshTimer.unref();
  }

  private answerRefresh(peer: Peer): void {
    if (!peer.established) return;
    peer.lastRefresh = Date.now();
    // Everything of those families again, even what the Adj-RIB-Out says the peer already has
    // (UNSENT entries stay: they are owed anyway, withdrawals among them).
    for (const [prefix, key] of peer.adjOut) if (key !== UNSENT && peer.refresh.has(familyOf(prefix))) peer.adjOut.delete(prefix);
    peer.refresh.clear();
    this.contained(peer, () => this.advertiseAll(peer, false));
  }

  private exportFor(peer: Peer, route: Route, afi: Afi): Export | undefined {
    const e = peer.established!;
    // Next hop self needs an address of the prefix's family on this session's link (or configured).
    const self = selfNextHops(afi, e.localAddress, e.linkAddresses, this.config.nextHopSelf);
    let out = exportAttributes(route, peer.info, this.config, self[0] ?? '');
    // A link-local next hop (zoned) means nothing to a peer off that link: ours goes instead, as for eBGP.
    if (out?.nextHop.includes('%')) out = { ...out, nextHop: self[0] ?? '' };
    // A next hop of the prefix's own family: NEXT_HOP holds IPv4 only, and we do not speak RFC 8950.
    if (!out || !out.nextHop || out.nextHop.includes(':') !== (afi === AFI.IPv6)) return undefined;
    // Our link-local address goes only beside our own global one (RFC 2545 §3); a next hop passed on goes alone.
    const nextHops = out.nextHop === self[0] ? self : [out.nextHop];
    return { ...out, nextHops, key: JSON.stringify([out.attrs, nextHops]) };
  }

  /**
   * Import policy and prefix limit, applied live. Prefixes the new filter refuses go at once; ones it
   * newly allows were dropped on arrival, so peers that support it are asked to send everything
   * again (ROUTE-REFRESH, RFC 2918).
   */
  setImportPolicy(policy: Pick<SpeakerConfig, 'importCIDRs' | 'allowDefaultRoute' | 'maxPrefixes' | 'rejectCIDRs'>): void {
    const before = JSON.stringify([this.config.importCIDRs, this.config.allowDefaultRoute, this.config.rejectCIDRs ?? []]);
    this.config.importCIDRs = policy.importCIDRs;
    this.config.allowDefaultRoute = policy.allowDefaultRoute;
    this.config.maxPrefixes = policy.maxPrefixes;
    this.config.rejectCIDRs = policy.rejectCIDRs ?? [];
    if (JSON.stringify([policy.importCIDRs, policy.allowDefaultRoute, policy.rejectCIDRs ?? []]) === before) return;
    this.importFilter = new ImportFilter(policy);
    const changes: BestChange[] = [];
    for (const [prefix] of [...this.rib.bestPaths()]) {
      if (this.importFilter.allows(prefix)) continue;
      for (const peer of this.peers.values()) if (this.rib.has(peer.info.id, prefix)) push(changes, this.rib.withdraw(peer.info.id, prefix));
    }
    this.apply(changes);
    for (const peer of this.peers.values()) if (peer.established?.routeRefresh) peer.session.requestRefresh(peer.established.families);
  }

  snapshot(): PeerSnapshot[] {
    return [...this.peers.values()].map((p) => {
      const s = p.session.snapshot();
      return {
        address: p.settings.address, asn: p.settings.asn, ...(p.settings.type ? { type: p.settings.type } : {}),
        state: s.state, uptimeSeconds: s.uptimeSeconds, prefixesReceived: this.rib.count(p.info.id), prefixesAdvertised: p.adjOut.size,
        families: this.familySnapshots(p),
        ...(s.lastError && s.state !== 'Established' ? { info: s.lastError } : {}),
        ...(p.settings.password ? { tcpMd5: true } : {}),
      };
    });
  }

  /** Per negotiated family, the prefixes received and advertised; a peer of one family needs no count of its Adj-RIB-Out. */
  private familySnapshots(p: Peer): FamilySnapshot[] {
    const families = p.established?.families.filter((f) => f.safi === SAFI_UNICAST) ?? [];
    let advertisedV6 = 0;
    if (families.length > 1) {
      for (const prefix of p.adjOut.keys()) if (familyOf(prefix) === AFI.IPv6) advertisedV6++;
    } else if (families[0]?.afi === AFI.IPv6) advertisedV6 = p.adjOut.size;
    return families.map((f) => ({
      family: f.afi === AFI.IPv6 ? 'ipv6-unicast' : 'ipv4-unicast',
      prefixesReceived: this.rib.count(p.info.id, ribFamily(f.afi)),
      prefixesAdvertised: f.afi === AFI.IPv6 ? advertisedV6 : p.adjOut.size - advertisedV6,
    }));
  }

  /** Best routes now (for tests and the benchmark). */
  bestRoutes(): RouteChange[] {
    return [...this.rib.bestPaths()].map(([prefix, b]) => ({ prefix, nextHops: this.rib.nextHops.of(b.best, b.multipath) }));
  }

  /**
   * The Loc-RIB's longest prefix covering `address`, its best path, and whether the import filter
   * takes that address at all (for lightlyctl doctor: one pass over the table, on demand only).
   */
  lookup(address: string): { prefix?: Prefix; best?: { peer: string; nextHop: string; stale: boolean }; importAllowed: boolean } {
    const host = `${address}/${address.includes(':') ? 128 : 32}`;
    const length = (p: Prefix): number => Number(p.slice(p.indexOf('/') + 1));
    let found: { prefix: Prefix; best: Route } | undefined;
    for (const [prefix, selection] of this.rib.bestPaths()) {
      if (prefix.includes(':') !== host.includes(':') || (found && length(prefix) <= length(found.prefix)) || !contains(prefix, host)) continue;
      found = { prefix, best: selection.best };
    }
    const importAllowed = this.importFilter.allows(found?.prefix ?? host);
    if (!found) return { importAllowed };
    const { best } = found;
    return { prefix: found.prefix, importAllowed, best: { peer: best.source === LOCAL ? LOCAL : best.source.address, nextHop: best.nextHop, stale: !!best.stale } };
  }

  /**
   * graceful: close TCP without a NOTIFICATION, so peers with graceful restart keep our routes
   * while we restart; else a Cease (admin shutdown) to every peer.
   */
  async stop(options: { graceful: boolean }): Promise<void> {
    clearTimeout(this.deferral?.timer);
    // Whoever stops us decides what becomes of the routes (the agent forgets them all): no late withdrawals.
    for (const immediate of this.drops) clearImmediate(immediate);
    this.drops.clear();
    for (const peer of this.peers.values()) {
      clearTimeout(peer.stale?.timer);
      peer.session.removeAllListeners();
      if (options.graceful) peer.session.drop();
      else peer.session.stop();
    }
    this.peers.clear();
    // A table shared with the route programmer outlives us: the next speaker must not find our candidates there.
    this.rib.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** What we tell one peer about a route; `key` identifies it, for grouping and the Adj-RIB-Out. */
interface Export {
  attrs: PathAttributes;
  nextHop: string;
  /** MP_REACH_NLRI's next hops: `nextHop`, and our link-local address after it where RFC 2545 §3 wants it. */
  nextHops: string[];
  key: string;
}

/**
 * Export results for one advertise pass, remembered for the last route seen: the changes of one
 * UPDATE come together and share one Route, so export policy and its key are worked out once for
 * all of them rather than once per prefix, and the Adj-RIB-Out shares one key string.
 */
class ExportCache {
  private route?: Route;
  private afi?: Afi;
  private out?: Export;

  constructor(private readonly compute: (route: Route, afi: Afi) => Export | undefined) {}

  /** Keeps the hidden class of these short-lived objects, and the code optimised for it, alive (see Change in bgp/rib/rib.ts). */
  static readonly shapeKeeper = new ExportCache(() => undefined);

  get(route: Route, afi: Afi): Export | undefined {
    if (route !== this.route || afi !== this.afi) {
      this.route = route;
      this.afi = afi;
      this.out = this.compute(route, afi);
    }
    return this.out;
  }
}

function push(changes: BestChange[], c: BestChange | undefined): void {
  if (c) changes.push(c);
}

/**
 * The changes of one UPDATE, in a list made at the most it can hold (one per prefix) and cut to what
 * came: grown by push, a full table's UPDATEs of ~1,000 prefixes made twice the list's size again
 * in arrays thrown away (sampled: 2-2.5 MB per 100,000 prefixes loaded or withdrawn).
 */
class ChangeList {
  private readonly items: BestChange[];
  private n = 0;

  constructor(most: number) {
    this.items = new Array<BestChange>(most);
  }

  /** Keeps the hidden class of these short-lived objects, and the code optimised for it, alive (see Change in bgp/rib/rib.ts). */
  static readonly shapeKeeper = new ChangeList(0);

  add(c: BestChange | undefined): void {
    if (c) this.items[this.n++] = c;
  }

  done(): BestChange[] {
    this.items.length = this.n;
    return this.items;
  }
}

/** Prefixes of one family sharing the attributes they are advertised with, and the room left for them. */
interface Group {
  make: (prefixes: Prefix[]) => UpdateMessage;
  /** Bytes an UPDATE has for NLRI after everything else (negative: not even the rest fits). */
  room: number;
  first: Prefix;
  prefixes: Prefix[];
}

/** The largest encoded prefix of each family: a length octet and the address. */
const MAX_PREFIX_BYTES: Record<Afi, number> = { [AFI.IPv4]: 5, [AFI.IPv6]: 17 };

function group(out: Export, afi: Afi, ctx: CodecContext, first: Prefix): Group {
  const make = afi === AFI.IPv4
    ? (chunk: Prefix[]): UpdateMessage => ({ type: 2, withdrawn: [], attributes: { ...out.attrs, nextHop: out.nextHop }, nlri: chunk })
    : (chunk: Prefix[]): UpdateMessage => ({ type: 2, withdrawn: [], attributes: out.attrs, nlri: [], mpReach: { family: { afi: AFI.IPv6, safi: SAFI_UNICAST }, nextHops: out.nextHops, nlri: chunk } });
  return { make, room: roomFor(make, ctx), first, prefixes: [] };
}

/**
 * Bytes left for NLRI in an UPDATE built by `make`, measured on the real encoding (RFC 4271 §4.3:
 * at most 4096 bytes). One byte is kept back: an MP attribute growing past 255 bytes takes an
 * extended length.
 */
function roomFor(make: (prefixes: Prefix[]) => UpdateMessage, ctx: CodecContext): number {
  try {
    return BGP_MAX_MESSAGE_LENGTH - encodeMessage(make([]), ctx).length - 1;
  } catch (err) {
    if (err instanceof RangeError) return -1; // the attributes alone pass 4096 bytes
    throw err;
  }
}

/** Sends `prefixes` in as few UPDATEs as fit, each filled by the encoded size of its prefixes. */
function packUpdates(prefixes: Prefix[], make: (prefixes: Prefix[]) => UpdateMessage, room: number, ctx: CodecContext, send: (frame: Buffer, prefixes: Prefix[]) => void): void {
  let chunk: Prefix[] = [];
  let used = 0;
  for (const prefix of prefixes) {
    const bytes = 1 + Math.ceil(Number(prefix.slice(prefix.indexOf('/') + 1)) / 8);
    if (used + bytes > room && chunk.length) {
      send(encodeMessage(make(chunk), ctx), chunk);
      chunk = [];
      used = 0;
    }
    chunk.push(prefix);
    used += bytes;
  }
  if (chunk.length) send(encodeMessage(make(chunk), ctx), chunk);
}
