"""The instructor's grader: ``python -m course grade SUBMISSIONS --out OUT``.

A short linear pipeline, one job per module:

=================  ==========================================================================================
``layouts``        the LMS downloads (Canvas zip, Moodle folders; zip or folder) as ``<student>/<NN_topic>.ipynb``
``discover``       which chapters were assigned, which student folders and notebooks there are (names, links)
``reading``        read a regular one-link file, validate it, extract its code (bounded magics translation), flags
``text``           safe text: names and messages as valid UTF-8 (escaped), CSV cells never formulas, size caps
``wire``           the only data format that crosses a process boundary: JSON + ``.npz`` without pickle
``sandbox``        the isolation of one submission: allow-list root, namespaces, clean environment, own user
``cgroups``        the kernel's limits per worker slot: memory (all of it), one core of CPU, processes
``runner``         what runs *inside* the sandbox: execute the cells, probe each question, send plain arrays
``worker``         the fork server: imports the frameworks once, forks sandboxes from a pristine zygote, keeps time
``pool``           the grader's side of the workers: parallel dispatch, in a fixed order of results
``executors``      where sandboxes run: the local pool, or (``dask_executor``) tasks on a Dask cluster's workers
``shards``         ``--shard I/N`` and ``grade-merge``: a run saved as tagged JSON and the N shards merged into one
``judging``        hidden cases from the secret seed, and the verdicts (computed here, never in the sandbox)
``cache``          results keyed by a hash of the submission, the tests and the grader (resumable runs)
``gradebook``      grades.csv and summary.csv, canonical and written atomically
``feedback``       one HTML page per student and notebook: what passed, what failed, a hint; no answers
``report``         report.html for the instructor, with plots
``roster``         ``--roster``: the class list, and which submission folder is whose
``lateness``       ``--due``, ``--late-penalty``, ``--submitted-at``: days late and what they cost
``lms``            the LMS facts of a run (identities, missing students, lateness) and ``OUT/identities.json``
``export``         ``course export canvas|moodle``: the gradebook import files
``pipeline``       the steps above in order; ``cli`` parses the command line
=================  ==========================================================================================
"""
#: Bump when a change of the grader should invalidate every cached result (the sources are hashed too).
GRADER_VERSION = "1"
