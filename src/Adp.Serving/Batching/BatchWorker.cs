using System.Diagnostics;
using Adp.Serving.Inference;
using Adp.Serving.Monitoring;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Adp.Serving.Batching;

/// <summary>
/// The one thread that runs the model. It takes the first waiting image, then keeps taking images until the batch
/// holds <see cref="ServeOptions.MaxBatch"/> or <see cref="ServeOptions.MaxWait"/> has passed, and purifies the batch
/// together (classify and purify requests as two sub-batches). libtorch's own threads (--threads) work inside each
/// call. On shutdown the queue closes and the worker answers every image already queued before it stops.
/// </summary>
public sealed class BatchWorker(BatchQueue queue, DefenseModels models, ServeOptions options, ServeMetrics metrics, ILogger<BatchWorker> log)
    : IHostedService
{
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Thread? _thread;

    /// <summary>Test hook: runs on the worker thread before each batch (a test can hold the worker here).</summary>
    internal Action<IReadOnlyList<WorkItem>>? BeforeBatch { get; set; }

    /// <summary>Seconds the most recent batch took (for Retry-After).</summary>
    public double LastBatchSeconds { get; private set; } = 1;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = "adp-model" };
        _thread.Start();
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        queue.Close();
        if (_thread is null) return;
        try { await _stopped.Task.WaitAsync(cancellationToken); }
        catch (OperationCanceledException) { log.LogWarning("shutdown timeout: {Count} queued images were not answered", queue.Count); }
    }

    /// <summary>Seconds until the queue has room again, roughly: the batches ahead times the last batch's time.</summary>
    public int RetryAfterSeconds() =>
        (int)Math.Clamp(Math.Ceiling((queue.Count / (double)options.MaxBatch + 1) * LastBatchSeconds), 1, 600);

    private void Loop()
    {
        try
        {
            var reader = queue.Reader;
            while (true)
            {
                if (!reader.TryRead(out var first))
                {
                    if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) break;   // closed and empty
                    continue;
                }
                var batch = new List<WorkItem> { first };
                var deadline = Stopwatch.GetTimestamp() + (long)(options.MaxWait.TotalSeconds * Stopwatch.Frequency);
                while (batch.Count < options.MaxBatch)
                {
                    if (reader.TryRead(out var next)) { batch.Add(next); continue; }
                    long left = deadline - Stopwatch.GetTimestamp();
                    if (left <= 0) break;
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(left / (double)Stopwatch.Frequency));
                    try
                    {
                        if (!reader.WaitToReadAsync(timeout.Token).AsTask().GetAwaiter().GetResult()) break;
                    }
                    catch (OperationCanceledException) { break; }
                }
                metrics.QueueLength.Set(queue.Count);
                Run(batch);
            }
        }
        catch (Exception e)
        {
            log.LogCritical(e, "the batch worker stopped");
        }
        finally
        {
            // Anything left (only after a crash of the loop itself) is answered rather than left hanging.
            while (queue.Reader.TryRead(out var left)) left.Completion.TrySetException(new InvalidOperationException("the model worker stopped"));
            _stopped.TrySetResult();
        }
    }

    private void Run(List<WorkItem> batch)
    {
        BeforeBatch?.Invoke(batch);
        var live = new List<WorkItem>(batch.Count);
        foreach (var item in batch)
            if (item.Aborted.IsCancellationRequested) item.Completion.TrySetCanceled(item.Aborted);
            else live.Add(item);
        if (live.Count == 0) return;
        long start = Stopwatch.GetTimestamp();
        foreach (var item in live) metrics.QueueWait.Observe(Stopwatch.GetElapsedTime(item.EnqueuedAt, start).TotalSeconds);
        var classify = live.Where(i => i.Kind == WorkKind.Classify).ToList();
        var purify = live.Where(i => i.Kind == WorkKind.Purify).ToList();
        try
        {
            var classified = BatchProcessor.Classify(models, classify);
            var purified = BatchProcessor.Purify(models, purify);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            LastBatchSeconds = seconds;
            metrics.Batch(live.Count, classify.Count, purify.Count, seconds);
            BatchInfo Info(WorkItem i) => new(live.Count, Stopwatch.GetElapsedTime(i.EnqueuedAt, start).TotalMilliseconds, seconds * 1000);
            for (int i = 0; i < classify.Count; i++) classify[i].Completion.TrySetResult(new WorkResult(classified[i], null, Info(classify[i])));
            for (int i = 0; i < purify.Count; i++) purify[i].Completion.TrySetResult(new WorkResult(null, purified[i], Info(purify[i])));
        }
        catch (Exception e)
        {
            log.LogError(e, "a batch of {Count} images failed", live.Count);
            foreach (var item in live) item.Completion.TrySetException(e);
        }
        finally
        {
            metrics.QueueLength.Set(queue.Count);
        }
    }
}
