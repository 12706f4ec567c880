/**
 * The many-agents phase: a fresh server, `agents` simulated agents (bench/loadgen.mjs) each
 * holding a long poll on its own TLS connection, then tasks one after another. Measures the
 * server's RSS with every poll open and the dispatch latency from the `POST /v1/tasks` being
 * sent (and from its answer) to a simulated agent reading the task out of its poll answer.
 *
 * Used by bench/run.mjs, and on its own to look at this phase alone:
 *   node bench/many-agents.mjs [--agents N] [--tasks N] [--cpu-prof DIR]
 * (needs `npm run build`; prints the result as JSON).
 *
 * The load generator runs in this process on the same 2 CPUs as the server, so its own CPU
 * (TLS for every connection, JSON) is reported next to the server's in `details.cpu`.
 */
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { Cleanup, benchRoot, createTarget, cpuTicks, rssMb, startServer, targetKey, withCpuAccounting } from './harness.mjs';
import { LoadGenerator } from './loadgen.mjs';
import { percentile, round, roundSizes, sleep, spread, summary } from './stats.mjs';

/**
 * Runs the phase. `plan`: { simAgents, simRounds, simTasks, rssSamples }. Returns { values,
 * spreads, notes, details, cpu } for the caller's table; keys are `server_rss_mb_10000_agents`
 * and `dispatch_p99_ms_10000_agents` whatever the count (`details.agents` says how many).
 */
export async function manyAgents(cleanup, root, plan, { clkTck = 100, nodeArgs = [], log = () => {} } = {}) {
  // Every simulated agent holds a connection: the server's connection bound (FERRY_MAX_CONNECTIONS,
  // 1024 by default) is raised for the fleet, as an operator of that many agents would.
  const env = { FERRY_MAX_CONNECTIONS: String(plan.simAgents + 1024) };
  const server = await startServer(cleanup, root, { name: 'server-loadgen', nodeArgs, env });
  await createTarget(server, 'sim');
  const rssEmpty = rssMb(server.pid);
  // 10,000 agents: registering and opening the polls takes a while; the bound grows with the count.
  const gen = new LoadGenerator(server, plan.simAgents, Date.now() + 10 * 60_000 + plan.simAgents * 60);
  cleanup.hook(() => gen.stop());
  const procs = [
    { name: 'server', pid: server.pid },
    { name: 'bench', pid: process.pid },
  ];
  try {
    const tReg = performance.now();
    const reg = await withCpuAccounting(procs, () => gen.register(), clkTck);
    const registerS = (performance.now() - tReg) / 1000;
    log(`registered ${plan.simAgents} simulated agents in ${registerS.toFixed(1)} s`);
    const tOpen = performance.now();
    const open = await withCpuAccounting(procs, () => gen.start(), clkTck);
    const openS = (performance.now() - tOpen) / 1000;
    log(`${gen.pollsOpen} polls open in ${openS.toFixed(1)} s`);
    await targetKey(server, 'sim', 30_000); // servers with secrets: a simulated agent publishes the key first
    await sleep(1500);
    const rssHeld = rssMb(server.pid);
    for (let i = 0; i < 5; i++) {
      const { json } = await server.api.json('POST', '/v1/tasks', { target: 'sim', script: 'true\n' });
      await gen.whenHandled(json.id, 15_000);
    }
    const rounds = [];
    const roundsFromAck = [];
    const fromAck = [];
    const fromSend = [];
    const ticks0 = cpuTicks(server.pid);
    const { usage } = await withCpuAccounting(
      procs,
      async () => {
        for (const size of roundSizes(plan.simTasks, plan.simRounds)) {
          const xs = [];
          const ys = [];
          for (let i = 0; i < size; i++) {
            const sent = performance.now();
            const { json, t } = await server.api.json('POST', '/v1/tasks', { target: 'sim', script: 'true\n' });
            const receivedAt = await gen.whenHandled(json.id, 15_000);
            xs.push(receivedAt - sent);
            ys.push(receivedAt - t);
          }
          fromSend.push(...xs);
          fromAck.push(...ys);
          rounds.push(percentile(xs, 99));
          roundsFromAck.push(percentile(ys, 99));
        }
      },
      clkTck,
    );
    const serverCpuS = (cpuTicks(server.pid) - ticks0) / clkTck;
    const rss = [];
    for (let i = 0; i < plan.rssSamples; i++) {
      await sleep(1000);
      rss.push(rssMb(server.pid));
    }
    if (gen.pollsOpen < plan.simAgents * 0.95)
      throw new Error(`only ${gen.pollsOpen} of ${plan.simAgents} simulated polls still open (${gen.errors} errors; last: ${gen.lastError})`);
    const notes = {};
    const small = plan.simAgents !== 10_000 ? `${plan.simAgents} simulated agents, not 10000; ` : '';
    if (small) notes.server_rss_mb_10000_agents = small.slice(0, -2);
    notes.dispatch_p99_ms_10000_agents = `${small}from POST sent; from its answer: p50 ${fmt(percentile(fromAck, 50))}, p99 ${fmt(percentile(fromAck, 99))} ms`;
    return {
      values: { server_rss_mb_10000_agents: median(rss), dispatch_p99_ms_10000_agents: median(rounds) },
      spreads: { server_rss_mb_10000_agents: spread(rss), dispatch_p99_ms_10000_agents: spread(rounds) },
      notes,
      cpu: { many_agents_register: reg.usage, many_agents_open_polls: open.usage, many_agents_dispatch: usage },
      details: {
        agents: plan.simAgents,
        tasks: fromSend.length,
        rounds: rounds.length,
        register_s: round(registerS),
        open_polls_s: round(openS),
        dispatch_from_send: summary(fromSend),
        dispatch_from_ack: summary(fromAck),
        dispatch_p99_from_ack_by_round: roundsFromAck.map((x) => round(x)),
        received_before_ack: fromAck.filter((x) => x < 0).length,
        server_cpu_ms_per_task: round((serverCpuS * 1000) / Math.max(1, fromSend.length)),
        polls_open_at_end: gen.pollsOpen,
        polls_answered_empty: gen.emptyAnswers,
        sealing_keys_published: gen.keysPublished,
        generator_errors: gen.errors,
        last_generator_error: gen.lastError ?? null,
        generator_rss_mb: round(rssMb(process.pid)),
        server_rss_mb_no_agents: round(rssEmpty),
        server_rss_mb_polls_held_before_tasks: round(rssHeld),
      },
    };
  } finally {
    await gen.stop();
    await server.proc.stop();
  }
}

function median(xs) {
  return percentile(xs, 50);
}

const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

// Standalone: node bench/many-agents.mjs [--agents N] [--tasks N] [--cpu-prof DIR]
if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
  };
  const simAgents = Number(arg('--agents', 200));
  const simTasks = Number(arg('--tasks', 120));
  const profDir = arg('--cpu-prof', undefined);
  const cleanup = new Cleanup();
  const root = benchRoot(cleanup);
  const stop = () => void cleanup.run().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const r = await manyAgents(
      cleanup,
      root,
      { simAgents, simRounds: 3, simTasks, rssSamples: 3 },
      {
        nodeArgs: profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
        log: (t) => process.stderr.write(`[many-agents] ${t}\n`),
      },
    );
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } finally {
    await cleanup.run();
  }
}
