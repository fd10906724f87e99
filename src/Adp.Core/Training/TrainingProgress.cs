namespace Adp.Training;

/// <summary>What a training loop reports after each iteration.</summary>
public sealed record TrainingProgress(long Iteration, long TotalIterations, double Loss, double ImagesPerSecond, string? Note = null);
