#!/usr/bin/env bash
# Issue 9's benchmarks P1-P7, one after another, as the README's table reports them. About a
# quarter of an hour on 2 cores; run it on an otherwise idle machine (load average printed first).
# Needs Chromium for P4 and P5 (/usr/bin/chromium, /usr/bin/chromedriver).
set -euo pipefail
cd "$(dirname "$0")/.."
uptime
echo "== P1: the 1-second tick, 100 live cards";          python bench/tick.py
echo "== P2: event-loop lag, 8 local edits of 12 MP";       python bench/loop_lag.py --runs 3
echo "== P3: local job / the same Pillow work, 12 MP";      python bench/local_overhead.py --runs 5
echo "== P4, P6: 10,000 images: start-up, first page";      python bench/scale.py --images 10000 --runs 3
echo "== P5: Start Edit click to loading card (Chromium)";  python bench/click_to_card.py --runs 10
echo "== P7: 200 jobs from 5 clients";                      python bench/clients.py
uptime
