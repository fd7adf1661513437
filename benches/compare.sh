#!/usr/bin/env bash
# compare.sh: lamina against the tools a user would otherwise run, on real Lambda layer trees.
#
# Usage:  bash benches/compare.sh [CORPUS ...]        (default: node-large node-medium)
# Env:
#   LAMINA_CORPUS  where the corpora are (or are built): default $TMPDIR/lamina-corpus
#   RUNS           timed runs of each command (default 5); medians are reported
#   OUT            the table is also written here (default benches/results/compare-<date>.md)
#   LAMINA_BIN     time this lamina binary instead of building one (to compare two versions)
#
# The corpora come from ../shared/bench/make-corpus.sh (real `npm ci` of pinned lock files). For
# each one the script makes a scratch lamina project whose layer holds the tree (hard links, so
# stat data is the same as the corpus), and a scratch git repository with the tree committed, then
# times, in one run and alternating between tools so that machine noise hits all alike:
#   - warm no-change status: lamina (stat and manifests modes) vs `git status` vs a plain lstat
#     walk (`find -printf`);
#   - cold hashing: lamina status with an empty cache vs `b3sum` of every file;
#   - cold build at deflate level 6 vs Info-ZIP `zip -r -X -q -6` (sizes too);
#   - rebuild after one file changed vs lamina's own cold build, and vs a synced copy of the
#     zip (`dd conv=fsync`), which is what writing the new zip alone costs on this disk now;
#   - peak resident memory of a cold build (`/usr/bin/time -v`).
# Needs: a release build of lamina (built here), git, zip, b3sum, python3, /usr/bin/time.
#
# lamina is built with `--no-default-features`: the timed commands (status, build) run the engine
# alone, which does not need the AWS SDK, and leaving the SDK out saves minutes of release
# compilation on a small machine. The binary goes to $CARGO_TARGET_DIR when that is set.
# The load average is sampled before and after each corpus and written with the table: on a
# shared machine it says how much the absolute times can be trusted (the ratios less so).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$REPO/../shared}
CORPUS=${LAMINA_CORPUS:-${TMPDIR:-/tmp}/lamina-corpus}
RUNS=${RUNS:-5}
WHICH=${*:-node-large node-medium}
OUT=${OUT:-$HERE/results/compare-$(date -u +%Y-%m-%d).md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lamina-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for tool in git zip b3sum python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "compare.sh needs $tool" >&2; exit 2; }
done
if [ -n "${LAMINA_BIN:-}" ]; then
  LAMINA=$LAMINA_BIN
else
  (cd "$REPO" && cargo build --release --locked --quiet --no-default-features)
  LAMINA=${CARGO_TARGET_DIR:-$REPO/target}/release/lamina
fi

python3 - "$LAMINA" "$CORPUS" "$SHARED" "$WORK" "$RUNS" "$OUT" $WHICH <<'PY'
import json, os, shutil, statistics, subprocess, sys, time

lamina, corpus, shared, work, runs, out = sys.argv[1:7]
runs = int(runs)
which = sys.argv[7:]


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def alternate(commands, prepare=None):
    """Times each command `runs` times, interleaved; returns medians in seconds."""
    samples = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            if prepare and name in prepare:
                subprocess.run(prepare[name], shell=True, check=True)
            samples[name].append(timed(cmd))
    return {name: statistics.median(values) for name, values in samples.items()}


def peak_rss_mb(cmd):
    result = subprocess.run(f"/usr/bin/time -v {cmd}", shell=True, check=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in result.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split(":")[1]) / 1024
    return float("nan")


rows = []
loads = []
for name in which:
    load_before = os.getloadavg()[0]
    sub = "python" if name == "py" else "nodejs"
    tree = os.path.join(corpus, name, sub)
    if not os.path.isdir(tree):
        sh(f"bash {shared}/bench/make-corpus.sh {corpus} {name}")
    project = os.path.join(work, name)
    layer = os.path.join(project, "layers", "bench", "lib")
    os.makedirs(layer)
    sh(f"cp -al {tree} {layer}/{sub}")
    runtime = "python3.11" if name == "py" else "nodejs22.x"
    with open(os.path.join(project, "lamina.toml"), "w") as f:
        f.write(f'[project]\nname = "bench"\n\n[layers.bench]\nruntimes = ["{runtime}"]\n')
    repo = os.path.join(work, name + "-git")
    os.makedirs(repo)
    sh(f"cp -al {tree} {repo}/{sub} && cd {repo} && git init -q && git add -A && "
       "git -c user.name=b -c user.email=b@b commit -qm corpus", stdout=subprocess.DEVNULL)
    files = int(subprocess.run(f"find {tree} -type f | wc -l", shell=True, check=True,
                               capture_output=True, text=True).stdout)

    lam = f"{lamina} --project {project}"
    forget = f"rm -rf {project}/.lamina"
    zip_out = os.path.join(work, name + ".zip")

    # Cold work first: cold hashing and cold builds against their references.
    cold = alternate(
        {
            "lamina cold hash (status, empty cache)": f"{lam} status",
            "b3sum of every file": f"find {tree} -type f -print0 | xargs -0 b3sum > /dev/null",
            "lamina cold build": f"{lam} build",
            "zip -r -X -q -6": f"cd {os.path.dirname(tree)} && zip -r -X -q -6 {zip_out} {sub}",
        },
        prepare={
            "lamina cold hash (status, empty cache)": forget,
            "lamina cold build": forget,
            "zip -r -X -q -6": f"rm -f {zip_out}",
        },
    )
    built = json.loads(subprocess.run(f"{lam} build --json", shell=True, check=True,
                                      capture_output=True, text=True).stdout)
    lamina_size = os.path.getsize(os.path.join(project, built["layers"][0]["zip"]))
    zip_size = os.path.getsize(zip_out)

    # Warm, no-change status against git status and a plain lstat walk.
    sh(f"{lam} status > /dev/null && {lam} status --fingerprint manifests > /dev/null")
    sh(f"git -C {repo} status --porcelain > /dev/null")
    warm = alternate(
        {
            "lamina status (stat)": f"{lam} status",
            "lamina status (manifests)": f"{lam} status --fingerprint manifests",
            "git status": f"git -C {repo} status --porcelain",
            "find -printf (lstat walk)": f"find {tree} -printf '%p %s %T@\\n' > /dev/null",
        }
    )

    # Rebuild after one changed file, alternating two contents so each run has a change.
    victim = subprocess.run(f"find {layer}/{sub} -name '*.js' -size +2k | sort | head -1",
                            shell=True, check=True, capture_output=True, text=True).stdout.strip()
    victim = victim or subprocess.run(f"find {layer}/{sub} -type f | sort | head -1", shell=True,
                                      check=True, capture_output=True, text=True).stdout.strip()
    # Break the hard link so the corpus and the git copy stay untouched.
    sh(f"cp --remove-destination {victim} {victim}.tmp && mv {victim}.tmp {victim}")
    # A rebuild writes a whole new zip and syncs it, so the disk's write speed at that moment
    # is its floor: a synced copy of the zip, timed alternately with it, shows that floor.
    built_zip = os.path.join(project, built["layers"][0]["zip"])
    copy = os.path.join(work, "copy.zip")
    rebuild = alternate(
        {
            "lamina rebuild after one change": f"{lam} build",
            "synced copy of the zip": f"dd if={built_zip} of={copy} bs=2M conv=fsync status=none",
        },
        prepare={
            "lamina rebuild after one change": f"echo \"// $(date +%s%N)\" >> {victim}",
            "synced copy of the zip": f"rm -f {copy}",
        },
    )
    sh(f"rm -f {copy}")
    sh(f"{forget}")
    rss = peak_rss_mb(f"{lam} build")

    loads.append((name, load_before, os.getloadavg()[0]))
    rows.append((name, files, cold, warm, rebuild, lamina_size, zip_size, rss))


def ms(seconds):
    return f"{seconds * 1000:,.0f} ms"


machine = subprocess.run("nproc; free -g | awk '/Mem/{print $2\" GiB\"}'; uname -r", shell=True,
                         capture_output=True, text=True).stdout.split()
lines = [f"# lamina vs other tools, {time.strftime('%Y-%m-%d', time.gmtime())}", "",
         f"Machine: {machine[0]} cores, {machine[1]} {machine[2]} RAM, Linux {machine[3]}; "
         f"medians of {runs} alternating runs; release build without the AWS SDK.",
         "Load average (1 min) before / after each corpus: "
         + "; ".join(f"{name} {before:.1f} / {after:.1f}" for name, before, after in loads)
         + ".", ""]
for name, files, cold, warm, rebuild, lamina_size, zip_size, rss in rows:
    git = warm["git status"]
    info = cold["zip -r -X -q -6"]
    build = cold["lamina cold build"]
    lines += [f"## {name} ({files:,} files)", "", "| work | lamina | reference | ratio | target |",
              "|---|---|---|---|---|"]
    lines.append(f"| warm status, stat mode vs `git status` | {ms(warm['lamina status (stat)'])} | "
                 f"{ms(git)} | {warm['lamina status (stat)'] / git:.2f}x | <= 0.6x |")
    lines.append(f"| warm status, manifests mode vs `git status` | "
                 f"{ms(warm['lamina status (manifests)'])} | {ms(git)} | "
                 f"{warm['lamina status (manifests)'] / git:.2f}x | <= 0.2x |")
    lines.append(f"| warm status, stat mode vs `find -printf` | {ms(warm['lamina status (stat)'])} | "
                 f"{ms(warm['find -printf (lstat walk)'])} | "
                 f"{warm['lamina status (stat)'] / warm['find -printf (lstat walk)']:.2f}x | |")
    lines.append(f"| cold build, level 6, vs `zip -r -X -q -6` | {ms(build)} | {ms(info)} | "
                 f"{build / info:.2f}x | <= 0.4x |")
    lines.append(f"| zip size vs Info-ZIP | {lamina_size / 1e6:,.1f} MB | {zip_size / 1e6:,.1f} MB | "
                 f"{lamina_size / zip_size:.3f}x | <= 1.02x |")
    b3 = cold["b3sum of every file"]
    hashing = cold["lamina cold hash (status, empty cache)"]
    lines.append(f"| cold hashing (status, empty cache) vs `b3sum` | {ms(hashing)} | {ms(b3)} | "
                 f"{hashing / b3:.2f}x | <= 1.2x |")
    one = rebuild["lamina rebuild after one change"]
    lines.append(f"| rebuild after one change vs own cold build | {ms(one)} | {ms(build)} | "
                 f"{one / build:.3f}x | <= 0.05x |")
    floor = rebuild["synced copy of the zip"]
    lines.append(f"| rebuild after one change vs a synced copy of its zip (`dd conv=fsync`) | "
                 f"{ms(one)} | {ms(floor)} | {one / floor:.2f}x | |")
    lines.append(f"| peak RSS, cold build | {rss:,.0f} MB | | | <= 150 MB |")
    lines.append("")

text = "\n".join(lines)
print(text)
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    f.write(text + "\n")
PY
