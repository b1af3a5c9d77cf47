"""Continuous training: triggers, a cost-aware policy, retrain through the gate, shadow,
promotion, watch and automatic rollback, as a durable state machine in the store.

See docs/loop.md.
"""
