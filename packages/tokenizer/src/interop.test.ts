import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeText, readSentences, referenceCorpusAvailable, referenceCorpusPath } from '@hanmadi/corpus';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeModelFile } from './model-file.js';
import { spmAvailable, spmEncodeIds, spmTrain } from './spm.js';
import { Tokenizer } from './tokenizer.js';
import { SPECIAL_IDS, trainBpe } from './trainer.js';

// Acceptance 1–3 of the tokenizer issue, against the real SentencePiece tools
// on every Q and A line of ChatbotData. CI installs both; a developer without
// them or the corpus sees these skipped, CI never does.
const runnable = (spmAvailable() && referenceCorpusAvailable()) || process.env['CI'] === 'true';

describe.runIf(runnable)('interop with SentencePiece on ChatbotData', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hanmadi-spm-'));
  const linesFile = join(dir, 'lines.txt');
  const oursFile = join(dir, 'ours.model');
  let lines: string[];
  let ours: Tokenizer;

  beforeAll(async () => {
    lines = await readSentences(referenceCorpusPath());
    writeFileSync(linesFile, `${lines.join('\n')}\n`);
    await writeModelFile(oursFile, trainBpe(lines, { vocabSize: 8000 }));
    ours = await Tokenizer.load(oursFile);
  });

  it('reads all 23,646 Q and A lines', () => {
    expect(lines).toHaveLength(23646);
  });

  it('our model gives, via spm_encode, exactly our ids on every line, with no <unk>', () => {
    const reference = spmEncodeIds(oursFile, linesFile);
    expect(reference).toHaveLength(lines.length);
    let unknown = 0;
    for (let i = 0; i < lines.length; i++) {
      const ids = ours.encode(lines[i]!);
      if (ids.join(' ') !== reference[i]!.join(' ')) expect.fail(`line ${i + 1} "${lines[i]}": ours ${ids.join(' ')}, spm_encode ${reference[i]!.join(' ')}`);
      unknown += ids.filter((id) => id === SPECIAL_IDS.unk).length;
    }
    expect(unknown).toBe(0);
  });

  it("compresses within 5% of spm_train's own BPE (mean pieces per line)", () => {
    spmTrain({ input: linesFile, model_prefix: join(dir, 'spm'), vocab_size: 8000, model_type: 'bpe' });
    const theirs = spmEncodeIds(join(dir, 'spm.model'), linesFile);
    const meanOurs = lines.reduce((sum, line) => sum + ours.encode(line).length, 0) / lines.length;
    const meanTheirs = theirs.reduce((sum, ids) => sum + ids.length, 0) / theirs.length;
    console.log(`mean pieces per line: ours ${meanOurs.toFixed(3)}, spm_train ${meanTheirs.toFixed(3)}`);
    expect(Math.abs(meanOurs - meanTheirs) / meanTheirs).toBeLessThanOrEqual(0.05);
  });

  it('a model trained by spm_train loads here and gives spm_encode ids on every line', async () => {
    const prefix = join(dir, 'spm-project-ids');
    spmTrain({ input: linesFile, model_prefix: prefix, vocab_size: 8000, model_type: 'bpe', pad_id: 0, unk_id: 1, bos_id: 2, eos_id: 3 });
    const theirs = await Tokenizer.load(`${prefix}.model`);
    expect(theirs.hasProjectSpecialIds).toBe(true);
    const reference = spmEncodeIds(`${prefix}.model`, linesFile);
    for (let i = 0; i < lines.length; i++) {
      const ids = theirs.encode(lines[i]!);
      if (ids.join(' ') !== reference[i]!.join(' ')) expect.fail(`line ${i + 1}: ours ${ids.join(' ')}, spm_encode ${reference[i]!.join(' ')}`);
    }
  });

  it("reads a foreign model's own special ids", async () => {
    const prefix = join(dir, 'spm-default-ids');
    spmTrain({ input: linesFile, model_prefix: prefix, vocab_size: 2000, model_type: 'bpe' });
    const theirs = await Tokenizer.load(`${prefix}.model`);
    expect(theirs.specialIds).toEqual({ pad: -1, unk: 0, bos: 1, eos: 2 });
    expect(theirs.hasProjectSpecialIds).toBe(false);
  });

  it('decode(encode(x)) equals normalize(x) on every line', () => {
    for (const line of lines) {
      const decoded = ours.decode(ours.encode(line));
      if (decoded !== normalizeText(line)) expect.fail(`"${line}" decoded as "${decoded}"`);
    }
  });
});
