#!/usr/bin/env python3
"""The r2rt rule at time_step 1 in PyTorch: does one-step truncated BPTT stay at 0.66?

The model of `bitrnn train --rule r2rt --lags 3,8 --hidden 4 --time-step 1`: nn.RNN(2, 4)
(tanh) + nn.Linear(4, 2), one-hot input, 250 streams x 2000 steps, windows of 1 step with the
hidden state carried (detached) from window to window and zeroed each epoch, Adagrad lr 0.1
with accumulator 0.1 and eps 0 (TensorFlow's), 10 epochs, one thread; the data drawn by
r2rt's rule P(y[t] = 1) = 0.5 + 0.5 x[t-3] - 0.25 x[t-8] with numpy (statistically bitrnn's,
not its bits). Two initialisations: PyTorch's defaults, and bitrnn's (Glorot-uniform weights,
zero biases, see src/model.rs). Prints, per initialisation and seed, the mean loss of the last
100 steps and the per-epoch means.

Measured 2026-12-01 (PyTorch 2.15, the 2-vCPU Xeon): PyTorch's init 0.5867, 0.5899, 0.6388
for seeds 0, 1, 2; bitrnn's init 0.6416, 0.5950, 0.6198 (bitrnn itself: 0.6117, 0.5453,
0.6060). Neither stays at the 0.6616 of "nothing learned": the carried state holds some of
x[t-3], and the one-step gradient trains the head and w_hh to read it.

    /work/venv-torch/bin/python scripts/pytorch_r2rt_ts1.py
"""
import sys, torch, numpy as np
from torch import nn
torch.set_num_threads(1); torch.set_flush_denormal(True)
H, S, L, T, EPOCHS = 4, 250, 2000, 1, 10
def data(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, S * L)
    p = 0.5 + 0.5 * np.roll(x, 3) - 0.25 * np.roll(x, 8)
    p[:8] = 0.5
    y = (rng.random(S * L) < p).astype(np.int64)
    return x.reshape(S, L), y.reshape(S, L)
def run(init, seed):
    torch.manual_seed(seed)
    rnn, fc = nn.RNN(2, H, batch_first=True), nn.Linear(H, 2)
    if init == "glorot":
        a = (6 / (2 + H + H)) ** 0.5
        for w in (rnn.weight_ih_l0, rnn.weight_hh_l0): nn.init.uniform_(w, -a, a)
        for b in (rnn.bias_ih_l0, rnn.bias_hh_l0, fc.bias): nn.init.zeros_(b)
        nn.init.uniform_(fc.weight, -(6 / (H + 2)) ** 0.5, (6 / (H + 2)) ** 0.5)
    params = list(rnn.parameters()) + list(fc.parameters())
    opt = torch.optim.Adagrad(params, lr=0.1, initial_accumulator_value=0.1, eps=0)
    x, y = data(seed)
    xo = torch.nn.functional.one_hot(torch.tensor(x), 2).float()
    yt = torch.tensor(y)
    losses = []
    for ep in range(EPOCHS):
        h = torch.zeros(1, S, H)
        for w in range(L // T):
            out, h = rnn(xo[:, w*T:(w+1)*T], h)
            h = h.detach()
            loss = nn.functional.cross_entropy(fc(out).reshape(-1, 2), yt[:, w*T:(w+1)*T].reshape(-1))
            opt.zero_grad(); loss.backward(); opt.step()
            losses.append(loss.item())
    return np.mean(losses[-100:]), [round(float(np.mean(losses[i*2000:(i+1)*2000])),4) for i in range(EPOCHS)]
for init in ("pytorch", "glorot"):
    for seed in (0, 1, 2):
        f, ep = run(init, seed)
        print(init, seed, round(float(f), 4), ep, flush=True)
