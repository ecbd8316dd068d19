// Compiled (not run) by test/types.test.js: realtime.d.ts must accept the
// documented usage and refuse misuse (the @ts-expect-error lines).
import { FaztRealtime, backoff, type Member, type RealtimeError, type State } from '../../realtime';

const rt = new FaztRealtime(undefined, { token: 'jwt', backoff: { min: 250, max: 10_000 }, callTimeout: 5000 });
const off: () => void = rt.on('message', (channel: string | null, data: unknown, meta) => {
  const at: number | undefined = meta.timestamp;
  void [channel, data, at];
});
off();
rt.on('connected', ({ clientId, user }) => void [clientId, user?.id]);
rt.on('disconnected', ({ code, reason, reconnect }) => void [code, reason, reconnect]);
rt.on('reconnecting', ({ attempt, delay }) => void [attempt, delay]);
rt.on('error', (error: RealtimeError) => void error.code);
rt.on('kicked', (reason) => void reason);
rt.on('broadcast', (data, meta) => void [data, meta.channel]);
rt.on('state', (state: State, previous: State) => void [state, previous]);

const sub = rt.subscribe('presence-room', {
  onMessage: (data, meta) => void [data, meta.from, meta.offset, meta.recovered === true],
  onSubscribed: ({ recovered, offset, epoch }) => void [recovered, offset, epoch],
  onJoin: (member: Member) => void member.name,
  onLeave: (member) => void member.id,
});
async function usage(): Promise<void> {
  const { channel, members } = await sub;
  const again = await sub.ready;
  const list: Member[] = await rt.members(channel);
  const { publications, offset, epoch } = await sub.history({ limit: 50 });
  const since = await rt.history('room-1', { since: { offset, epoch } });
  const texts: unknown[] = [...publications, ...since.publications].map((p) => [p.data, p.offset, p.timestamp]);
  const where: [number | null, string | null] = [sub.offset, sub.epoch];
  void [texts, where];
  await rt.publish('chat', { text: 'hi' });
  await rt.unsubscribe('chat');
  await sub.unsubscribe();
  rt.setToken(null);
  rt.setToken(async () => (await fetch('/api/token')).text());
  rt.connect().close();
  void [members, again, list, sub.members, sub.state, rt.state, rt.clientId];
}
void usage;
const delay: number = backoff(3) + FaztRealtime.backoff(2, { max: 1000 }, Math.random);
const policy: 'now' | 'slow' | 'retry' | 'stop' = FaztRealtime.closePolicy(4003);
void [delay, policy, globalThis.FaztRealtime];
new FaztRealtime('wss://chat.example.com/_ws', { token: () => localStorage.getItem('token') });
// @ts-expect-error a token is a string, not a number
new FaztRealtime(null, { token: 42 });

// @ts-expect-error unknown event name
rt.on('conected', () => {});
// @ts-expect-error channel must be a string
rt.subscribe(42);
// @ts-expect-error the state is read-only
rt.state = 'connected';
// @ts-expect-error since needs an epoch
void rt.history('room', { since: { offset: 3 } });
