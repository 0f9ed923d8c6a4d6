"""Alignment comparisons: reward model, DPO, policy gradient (REINFORCE, PPO)."""
