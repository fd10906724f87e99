using System.Diagnostics;

namespace Adp.Serving.Batching;

/// <summary>What a request asks of the model.</summary>
public enum WorkKind { Classify, Purify }

/// <summary>
/// One image waiting for the model: its pixels (C·H·W floats in [0,1], already checked against the model), the
/// request's seed, and where the answer goes. Created on a request thread, answered by the batch worker.
/// </summary>
public sealed class WorkItem(WorkKind kind, float[] pixels, long seed, bool trajectory = false, CancellationToken aborted = default)
{
    public WorkKind Kind { get; } = kind;
    public float[] Pixels { get; } = pixels;
    public long Seed { get; } = seed;
    /// <summary>Purify only: return every step, not just the result.</summary>
    public bool Trajectory { get; } = trajectory;
    /// <summary>The client went away: the worker skips the item if it has not started it.</summary>
    public CancellationToken Aborted { get; } = aborted;
    public long EnqueuedAt { get; } = Stopwatch.GetTimestamp();
    public TaskCompletionSource<WorkResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>The defended decision for one image. <c>Probabilities</c> are the decision rule's class probabilities
/// (K); <c>Votes</c> and <c>Steps</c> have one entry per purification run (S).</summary>
public sealed record ClassifyOutcome(int Label, float[] Probabilities, int[] Votes, int[] Steps);

/// <summary>One purification of one image: the result as PNG, and x₀ (the noisy start) then every step's iterate
/// as PNGs (T+1) when they were asked for.</summary>
public sealed record PurifyOutcome(byte[] Purified, byte[][]? Trajectory, int StepsTaken);

/// <summary>The batch an image was purified in: its size (images), how long the image waited in the queue, and
/// how long the batch took on the model.</summary>
public sealed record BatchInfo(int Size, double QueueMs, double ComputeMs);

public sealed record WorkResult(ClassifyOutcome? Classify, PurifyOutcome? Purify, BatchInfo Batch);
