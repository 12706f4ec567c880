/**
 * The spool's files on disk: a task's spool is `<id>.frames` in the spool folder (its final
 * status appended as a record frame; `<id>.state` only for acknowledgements saved after 250 ms),
 * with no folder per task; an older agent's `<id>/` folders are still listed, recovered and
 * removed; and whatever a crash can leave (a removal cut short, a state write or a record cut
 * short) is recovered with the final status it recorded, if it recorded one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrames, Streams, type FinishTaskRequest } from '@ferry/protocol';
import { TaskSpool } from '../src/output/spool.js';

const FINAL: FinishTaskRequest = { status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: 6, outputDigest: '0'.repeat(64) };

function inTempDir(fn: (spoolDir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-spool-layout-'));
    try {
      await fn(join(root, 'spool'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

test(
  'a new spool is one frames file (the spool folder made on first use), which also holds its final status, and nothing after removal',
  inTempDir(async (spoolDir) => {
    const spool = TaskSpool.create(spoolDir, 't_layout1');
    assert.deepEqual(readdirSync(spoolDir), ['t_layout1.frames'], 'no folder and no state file for a task that has recorded nothing');
    assert.deepEqual(TaskSpool.list(spoolDir), ['t_layout1'], 'a spool with frames only is a task the agent was running');
    spool.append(Streams.stdout, Buffer.from('hello\n'));
    spool.acknowledge(6);
    spool.recordFinal(FINAL);
    assert.deepEqual(readdirSync(spoolDir), ['t_layout1.frames'], 'an early acknowledgement and the final status make no other file');
    assert.throws(() => spool.append(Streams.stdout, Buffer.from('late\n')), /after the final status/);
    spool.close();
    const recovered = TaskSpool.recover(spoolDir, 't_layout1');
    assert.deepEqual(recovered.final, FINAL);
    assert.equal(recovered.bytesProduced, 6, 'the record is not output');
    assert.equal(recovered.readChunk(0, 1024, 16).body.length, 13 + 6, 'an upload never carries the record');
    await recovered.remove();
    assert.deepEqual(readdirSync(spoolDir), [], 'removal leaves nothing behind');
    assert.deepEqual(TaskSpool.list(spoolDir), []);
  }),
);

test(
  "an older agent's folder spool is listed, recovered with its final status and output, and removed whole",
  inTempDir(async (spoolDir) => {
    const folder = join(spoolDir, 't_older1');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'output.frames'), encodeFrames([{ stream: Streams.stdout, time: 1_700_000_000_000, data: Buffer.from('older\n') }]));
    writeFileSync(join(folder, 'state.json'), JSON.stringify({ acked: 2, final: FINAL }));
    writeFileSync(join(folder, 'state.json.tmp'), '{"acked":');
    assert.deepEqual(TaskSpool.list(spoolDir), ['t_older1']);
    const spool = TaskSpool.recover(spoolDir, 't_older1');
    assert.deepEqual(spool.final, FINAL);
    assert.equal(spool.acked, 2);
    assert.equal(spool.bytesProduced, 6);
    await spool.remove();
    assert.equal(existsSync(folder), false, 'the folder is removed with its files');
  }),
);

test(
  'a removal cut short after the state leaves the frames with the final status, which is delivered again; a torn state write is dropped',
  inTempDir(async (spoolDir) => {
    const spool = TaskSpool.create(spoolDir, 't_cut1');
    spool.append(Streams.stdout, Buffer.from('cut\n'));
    spool.recordFinal({ ...FINAL, outputBytes: 4 });
    spool.close();
    writeFileSync(join(spoolDir, 't_cut1.state.tmp'), '{"acked":0,"fin');
    assert.deepEqual(TaskSpool.list(spoolDir), ['t_cut1']);
    const recovered = TaskSpool.recover(spoolDir, 't_cut1');
    assert.equal(recovered.final?.outputBytes, 4, 'the final status recorded before the crash is delivered again');
    assert.equal(existsSync(join(spoolDir, 't_cut1.state.tmp')), false, 'the torn state write is removed');
    await recovered.remove();
    assert.deepEqual(readdirSync(spoolDir), []);
  }),
);

test(
  'a final status cut short by a crash is dropped and cut from the file, and the one recovery records reads back',
  inTempDir((spoolDir) => {
    const spool = TaskSpool.create(spoolDir, 't_torn1');
    spool.append(Streams.stdout, Buffer.from('torn\n'));
    spool.close();
    const whole = statSync(join(spoolDir, 't_torn1.frames')).size;
    appendFileSync(join(spoolDir, 't_torn1.frames'), Buffer.from([0xf1, 0, 0, 0, 200, 0, 0, 0]));
    const recovered = TaskSpool.recover(spoolDir, 't_torn1');
    assert.equal(recovered.final, null, 'a torn record records nothing: the task is one the agent cannot account for');
    assert.equal(statSync(join(spoolDir, 't_torn1.frames')).size, whole, 'the torn bytes are cut');
    recovered.recordFinal({ ...FINAL, status: 'error', outputBytes: 5 });
    recovered.close();
    const again = TaskSpool.recover(spoolDir, 't_torn1');
    assert.equal(again.final?.status, 'error');
    assert.equal(again.bytesProduced, 5);
    again.close();
  }),
);
