"""What the course needs beside its lessons: small helpers every lesson shares and the tooling
of the course itself.

- `arguments`: the argument checks (whole numbers, numbers in a range, token ids);
- `files`: writing a file so that a crash never leaves half of it;
- `student`: the learner's copy of the lessons (`python -m numogpt student DIR`);
- `notebooks`: the lesson notebooks as files, and how a maintainer re-runs them;
- `doctor`: is this machine ready for the course? (`python -m numogpt doctor`).
"""
