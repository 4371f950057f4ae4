#!/usr/bin/env bash
# The README's tour, run again: every example of README.md's "A tour", in a fresh folder with its
# own checkpoints, each command printed after `$ ` and followed by what it wrote (stdout and
# stderr), so that the README's transcripts are regenerated, not retyped.
#
#   bench/tour.sh path/to/tinyshakespeare.txt [FOLDER]    # FOLDER: where to run (default: a new one)
#
# Commands whose output differs on a terminal (`corpus list`, `runs`) run on a pseudo-terminal
# (`script`), as the README shows them. Times and speeds are this machine's; everything else is
# the same on every run of the same code (the same steps, the same seeds), but for the fine-tune,
# whose budget is time.
set -euo pipefail

if [[ $# -lt 1 || ! -f $1 ]]; then
    echo "usage: bench/tour.sh path/to/tinyshakespeare.txt [FOLDER]" >&2
    exit 2
fi
corpus=$(realpath "$1")
work=${2:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"
cp "$corpus" tinyshakespeare.txt
printf 'To be, or not to be, that is the question.\nThe quick brown fox jumps over the lazy dog.\nxkcd qwv zzzp jjj!\nROMEO:\n' > lines.txt
echo "bench/tour.sh in $work: $(date -u '+%Y-%m-%d %H:%M UTC'), $(charrnn --version 2>&1 | head -1)" >&2

ends_a_line() {  # what a terminal shows: a text that ends without a line break gets one
    local out
    out=$(cat; echo .)
    out=${out%.}
    printf '%s' "$out"
    [[ -z $out || $out == *$'\n' ]] || echo
}
run() {  # a command line, printed, then run with its stderr beside its stdout
    printf '$ %s\n' "$1"
    bash -c "$1" 2>&1 | ends_a_line
}
on_a_terminal() {  # the same, on a pseudo-terminal 200 columns wide, without colours or the
    printf '$ %s\n' "$1"  # spaces that end a table's lines
    COLUMNS=200 script -qec "$1" /dev/null | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g; s/ *$//'
}

run 'charrnn train tinyshakespeare.txt --size tiny --steps 5328'
run 'charrnn sample --prime "ROMEO:" --length 300 --seed 1'
run 'charrnn sample -n 2 -l 60 --top-p 0.9 --json --seed 5'
run 'charrnn sample --temp 0 --length 120 --prime "JULIET:"'
run 'charrnn score --per-line lines.txt'
run 'charrnn score -q lines.txt'
on_a_terminal 'charrnn corpus list'
run 'charrnn corpus get pystdlib'
run 'charrnn plot tinyshakespeare | head -4'
run 'tail -c 10000 tinyshakespeare.txt | sed 1d > held-out.txt'
run 'charrnn inspect -c tinyshakespeare held-out.txt --max-chars 10000 --find-units --gates'
unit=$(charrnn inspect -c tinyshakespeare held-out.txt --max-chars 10000 --find-units 2>/dev/null |
    awk -F'\t' '$1 == "line position" {print $2}')  # the unit the README follows
show=""
[[ ${unit%% *} == cell ]] || show=" --show ${unit%% *}"  # the cell state unless the best is another
# the header, then the characters at the start of the text's second line (its first is read from
# a cold state)
second=$(($(head -1 held-out.txt | wc -c) + 1))
run "charrnn inspect -c tinyshakespeare held-out.txt --unit ${unit#* }$show --color never | sed -n '1p;$((second + 1)),$((second + 5))p'"
run 'charrnn export -c tinyshakespeare page.html --prime "ROMEO:"'
run "python3 -c \"from pydoc_data.topics import topics; import sys; sys.stdout.write(''.join(topics[k] for k in sorted(topics))[:40000])\" > pydocs.txt"
run 'charrnn train pydocs.txt --init-from tinyshakespeare --time 30s'
run 'charrnn sample -c pydocs --seed 1 --prime "The " -l 120'
on_a_terminal 'charrnn runs'
run 'OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 -m charrnn train tinyshakespeare.txt --name two --size tiny --steps 300'
# how far back a model remembers: an LSTM and a vanilla RNN of the same size on Python source,
# measured on its last 100,000 characters (the validation split's)
run 'tail -c 100000 "$(charrnn corpus get pystdlib)" > held-out.py'
run 'charrnn train pystdlib --size tiny --steps 1500 --name code-lstm -q'
run 'charrnn train pystdlib --size tiny --steps 1500 --cell rnn --name code-rnn -q'
run 'charrnn memory held-out.py -c code-lstm -c code-rnn'
