//! Which shard of a collect run this process takes: `--shard I/N`, or `--shard auto` from the
//! scheduler that started it (a Slurm job array, a Kubernetes Indexed Job). Shards are combined
//! by `culturelens merge`.

/// `--shard auto`: this task's shard from the scheduler that started it. A Slurm job array gives
/// both (SLURM_ARRAY_TASK_ID, counted from SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT); a
/// Kubernetes Indexed Job gives the index (JOB_COMPLETION_INDEX) and `count` (its completions,
/// from --shard-count) the number.
pub fn shard_from_env(count: Option<usize>, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<(usize, usize)> {
    let num = |name: &str| -> anyhow::Result<Option<usize>> {
        env(name)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| anyhow::anyhow!("--shard auto: {name}={v:?} is not a number"))
            })
            .transpose()
    };
    let (index, n) = if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        if num("SLURM_ARRAY_TASK_STEP")?.is_some_and(|s| s != 1) {
            anyhow::bail!(
                "--shard auto needs a contiguous job array (--array=0-N, no step); give --shard I/N otherwise"
            );
        }
        let n = match (num("SLURM_ARRAY_TASK_COUNT")?, count) {
            (Some(n), Some(c)) if n != c => {
                anyhow::bail!("--shard-count {c} disagrees with SLURM_ARRAY_TASK_COUNT={n}")
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => anyhow::bail!("--shard auto: SLURM_ARRAY_TASK_COUNT is not set; give --shard-count"),
        };
        let index = id.checked_sub(min).ok_or_else(|| {
            anyhow::anyhow!("--shard auto: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
        })?;
        (index, n)
    } else if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let n = count.ok_or_else(|| {
            anyhow::anyhow!("--shard auto: a Kubernetes Indexed Job gives JOB_COMPLETION_INDEX but not the count; give --shard-count (its completions)")
        })?;
        (index, n)
    } else {
        anyhow::bail!(
            "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes \
             Indexed Job) is set; give --shard I/N"
        );
    };
    parse_shard(&format!("{index}/{n}"))
}

/// `--shard` as given: "I/N", or "auto" (see [`shard_from_env`]).
pub fn shard_arg(s: &str, count: Option<usize>) -> anyhow::Result<(usize, usize)> {
    if s == "auto" {
        shard_from_env(count, |k| std::env::var(k).ok())
    } else {
        parse_shard(s)
    }
}

/// Parses "i/n" with 0 ≤ i < n.
pub fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--shard {s}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn shard_auto_reads_slurm_and_kubernetes() {
        let slurm = [("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(shard_from_env(None, env(&slurm)).unwrap(), (3, 4));
        // --array=1-4: ids count from the minimum.
        let from_one = [("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(shard_from_env(None, env(&from_one)).unwrap(), (3, 4));
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(shard_from_env(Some(8), env(&k8s)).unwrap(), (2, 8));
        let e = shard_from_env(None, env(&k8s)).unwrap_err().to_string();
        assert!(e.contains("--shard-count"), "{e}");
        let e = shard_from_env(None, env(&[])).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID") && e.contains("JOB_COMPLETION_INDEX"), "{e}");
        let e = shard_from_env(Some(2), env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap_err().to_string();
        assert!(e.contains("2/2"), "{e}");
        let stepped = [("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_STEP", "4")];
        assert!(shard_from_env(None, env(&stepped)).unwrap_err().to_string().contains("contiguous"));
        assert!(shard_from_env(Some(3), env(&slurm)).unwrap_err().to_string().contains("disagrees"));
        let e = shard_from_env(None, env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err().to_string();
        assert!(e.contains("\"x\""), "{e}");
    }
}
