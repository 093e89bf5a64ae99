//! The dependency planner: petgraph DAG, conflict edges, phases, parallel groups, mode, strategy, critical path.
