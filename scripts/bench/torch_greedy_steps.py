"""The PyTorch reference's greedy reply forced to exactly N decoder steps (K/V cache, batch 1),
for each N given: the same work as a natural reply that stops at EOS after N steps, measured
now, on weights that never emit EOS. Run with the reference's files as the working directory
(run-reference.sh copies them there), like its bench_decode.py.
Usage: torch_greedy_steps.py MODEL_PT THREADS N [N ...]"""
import sys, os, time, statistics, json

sys.path.insert(0, os.getcwd())  # the reference's own modules, copied there
import torch
import sentencepiece as spm
from model import Seq2SeqTransformer, EOS, greedy
from common import CFG, HERE, load_data

path, threads, counts = sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3:]]
torch.set_num_threads(threads)
data = load_data()
sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "spm_bpe8k.model"))
model = Seq2SeqTransformer(data["vocab"], **CFG)
model.load_state_dict(torch.load(path))
model.eval()
src = torch.tensor([sp.encode("오늘 너무 힘들어")[:39] + [EOS]])


def median_ms(fn, reps=30, warm=5):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


print(json.dumps({str(n): median_ms(lambda: greedy(model, src, n, use_cache=True, stop_at_eos=False)) for n in counts}))
