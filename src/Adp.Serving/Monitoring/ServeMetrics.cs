using System.Diagnostics;
using Prometheus;

namespace Adp.Serving.Monitoring;

/// <summary>
/// The service's Prometheus metrics, in a registry of its own (so two services in one process, as in the tests, do
/// not share counts). /metrics exports them with the HTTP request counters and latency histograms of prometheus-net
/// (<c>http_requests_received_total</c>, <c>http_request_duration_seconds</c>).
/// </summary>
public sealed class ServeMetrics
{
    private static readonly double WindowSeconds = 10;
    private readonly Queue<(long At, int Images)> _recent = new();
    private readonly Lock _lock = new();

    public ServeMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        Factory = Metrics.WithCustomRegistry(Registry);
        BatchSize = Factory.CreateHistogram("adp_batch_size_images", "Images per batch sent through the model",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
        QueueLength = Factory.CreateGauge("adp_queue_length", "Images waiting for the model");
        Images = Factory.CreateCounter("adp_images_total", "Images answered by the model", new CounterConfiguration { LabelNames = ["kind"] });
        ImagesPerSecond = Factory.CreateGauge("adp_images_per_second", $"Images answered per second over the last {WindowSeconds:F0} s");
        Rejected = Factory.CreateCounter("adp_rejected_total", "Requests refused with 503 because the queue was full or the service was stopping");
        BadInput = Factory.CreateCounter("adp_bad_input_total", "Requests refused with a 4xx for bad input", new CounterConfiguration { LabelNames = ["status"] });
        QueueWait = Factory.CreateHistogram("adp_queue_wait_seconds", "Time an image waited before its batch started",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 18) });
        BatchSeconds = Factory.CreateHistogram("adp_batch_seconds", "Time a batch took on the model",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.005, 2, 16) });
        Latency = Factory.CreateHistogram("adp_inference_latency_seconds", "Request time from arrival to answer, per endpoint",
            new HistogramConfiguration { LabelNames = ["endpoint"], Buckets = Histogram.ExponentialBuckets(0.005, 2, 16) });
        Registry.AddBeforeCollectCallback(UpdateRate);
    }

    public CollectorRegistry Registry { get; }
    public IMetricFactory Factory { get; }
    public Histogram BatchSize { get; }
    public Gauge QueueLength { get; }
    public Counter Images { get; }
    public Gauge ImagesPerSecond { get; }
    public Counter Rejected { get; }
    public Counter BadInput { get; }
    public Histogram QueueWait { get; }
    public Histogram BatchSeconds { get; }
    public Histogram Latency { get; }

    /// <summary>Records a finished batch.</summary>
    public void Batch(int images, int classify, int purify, double seconds)
    {
        BatchSize.Observe(images);
        BatchSeconds.Observe(seconds);
        if (classify > 0) Images.WithLabels("classify").Inc(classify);
        if (purify > 0) Images.WithLabels("purify").Inc(purify);
        lock (_lock) _recent.Enqueue((Stopwatch.GetTimestamp(), images));
        UpdateRate();
    }

    private void UpdateRate()
    {
        lock (_lock)
        {
            long now = Stopwatch.GetTimestamp();
            while (_recent.Count > 0 && Stopwatch.GetElapsedTime(_recent.Peek().At, now).TotalSeconds > WindowSeconds) _recent.Dequeue();
            ImagesPerSecond.Set(_recent.Sum(r => r.Images) / WindowSeconds);
        }
    }
}
