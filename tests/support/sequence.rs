//! The sequence of runs both state backends' bytes tests make: a tenth of
//! the resources updated per run (a different slice each time), and every
//! 7th run one removed and one created past the end.

/// What a run does: put these resources (at a version), remove these.
pub struct Run {
    pub puts: Vec<(usize, usize)>,
    pub removes: Vec<usize>,
}

/// The run of step `step` over `n` resources.
pub fn step_run(n: usize, step: usize) -> Run {
    let mut puts: Vec<(usize, usize)> = (step % 10..n).step_by(10).map(|i| (i, step)).collect();
    let mut removes = vec![];
    if step.is_multiple_of(7) {
        removes.push((step * 13) % n);
        puts.retain(|(i, _)| !removes.contains(i));
        puts.push((n + step, step));
    }
    Run { puts, removes }
}
