using System.Diagnostics;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using static Adp.Tests.Serve.ServeHttp;

namespace Adp.Tests.Serve;

/// <summary>A test that needs headless Chromium and chromedriver (Debian: chromium, chromium-driver; .ci/run
/// installs them). $ADP_CHROMIUM and $ADP_CHROMEDRIVER override the paths.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public static string Chromium => Environment.GetEnvironmentVariable("ADP_CHROMIUM") ?? "/usr/bin/chromium";
    public static string ChromeDriver => Environment.GetEnvironmentVariable("ADP_CHROMEDRIVER") ?? "/usr/bin/chromedriver";

    public BrowserFactAttribute()
    {
        if (!File.Exists(Chromium) || !File.Exists(ChromeDriver))
            Skip = $"headless Chromium not found ({Chromium}, {ChromeDriver}): apt-get install chromium chromium-driver " +
                   "(.ci/run installs them), or set ADP_CHROMIUM and ADP_CHROMEDRIVER";
    }
}

/// <summary>The web page of `adp serve` in a real browser (issue 14): load it, upload a test image, read the label it
/// shows, and keep a screenshot (bin/…/artifacts/serve-page.png).</summary>
[Collection(ServeCollection.Name)]
public class ServeBrowserTests(ServeFixture f)
{
    public static string ArtifactsDir => Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "artifacts")).FullName;

    [BrowserFact]
    public async Task ThePageShowsEveryStepAndTheDefendedLabel()
    {
        await using var s = await ServeApp.StartOnLoopback(f.Models);
        // What the API answers for this image and seed is what the page must show.
        const long seed = 11;
        var expected = await OkJson(await s.Client.PostAsync($"/v1/classify?seed={seed}", Png(f.Pngs[1])));
        string label = expected.GetProperty("className").GetString()!;
        Assert.Equal("Pullover", label);

        var image = Path.Combine(Directory.CreateTempSubdirectory("adp-page-").FullName, "pullover.png");
        await File.WriteAllBytesAsync(image, f.Pngs[1]);
        var profiles = new List<string>();
        ChromeDriver NewBrowser()
        {
            var profile = Directory.CreateTempSubdirectory("adp-chromium-").FullName;   // a new empty profile each time
            profiles.Add(profile);
            var options = new ChromeOptions { BinaryLocation = BrowserFactAttribute.Chromium };
            options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1200,1000", $"--user-data-dir={profile}");
            // The driver's path is given, so Selenium Manager (which would look for drivers online) is not used.
            var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(BrowserFactAttribute.ChromeDriver)!,
                Path.GetFileName(BrowserFactAttribute.ChromeDriver));
            service.SuppressInitialDiagnosticInformation = true;
            service.HideCommandPromptWindow = true;
            return new ChromeDriver(service, options, TimeSpan.FromSeconds(90));
        }

        using var driver = NewBrowser();
        try
        {
            driver.Navigate().GoToUrl(s.BaseAddress);
            Wait(driver, () => driver.FindElement(By.Id("model")).Text.Contains("fashion-mnist"), "the page shows the model");
            driver.FindElement(By.Id("seed")).SendKeys(seed.ToString());
            driver.FindElement(By.Id("file")).SendKeys(image);
            Wait(driver, () => driver.FindElement(By.Id("status")).GetAttribute("data-state") is "done" or "error", "the page finishes");
            Assert.Equal("", driver.FindElement(By.Id("error")).Text);
            Assert.Equal(label, driver.FindElement(By.Id("label")).Text);
            Assert.Equal($"seed {seed}", driver.FindElement(By.Id("seed-used")).Text);
            // input, noisy start, T steps, purified
            var captions = driver.FindElements(By.CssSelector("#steps figcaption")).Select(e => e.Text).ToList();
            Assert.Equal(["input", "noisy start x₀", .. Enumerable.Range(1, ServeFixture.Steps).Select(t => $"step {t}"), "purified"], captions);
            Assert.All(driver.FindElements(By.CssSelector("#steps img")),
                img => Assert.True(Convert.ToInt64(((IJavaScriptExecutor)driver).ExecuteScript("return arguments[0].naturalWidth;", img)) == 28));
            Assert.Equal(10, driver.FindElements(By.CssSelector("#probs tr")).Count);
            Assert.Contains(label, driver.FindElement(By.CssSelector("#probs tr.top")).Text);
            Assert.Contains($"{label} ×{ServeFixture.Runs}", driver.FindElement(By.Id("votes")).Text);
        }
        finally
        {
            driver.GetScreenshot().SaveAsFile(Path.Combine(ArtifactsDir, "serve-page.png"));
            driver.Quit();
        }

        // A refused upload shows the service's one-line error on the page.
        using var driver2 = NewBrowser();
        try
        {
            var bad = Path.Combine(Path.GetDirectoryName(image)!, "big.png");
            await File.WriteAllBytesAsync(bad, GreyPng(32, 32));
            driver2.Navigate().GoToUrl(s.BaseAddress);
            driver2.FindElement(By.Id("file")).SendKeys(bad);
            Wait(driver2, () => driver2.FindElement(By.Id("status")).GetAttribute("data-state") == "error", "the page shows the refusal");
            Assert.Contains("this model takes 28×28 images", driver2.FindElement(By.Id("error")).Text);
        }
        finally
        {
            driver2.GetScreenshot().SaveAsFile(Path.Combine(ArtifactsDir, "serve-page-refused.png"));
            driver2.Quit();
            foreach (var profile in profiles)
                try { Directory.Delete(profile, true); } catch (IOException) { }
        }
    }

    private static void Wait(IWebDriver driver, Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try { if (condition()) return; }
            catch (NoSuchElementException) { }
            catch (StaleElementReferenceException) { }
            if (sw.Elapsed > TimeSpan.FromSeconds(60))
                Assert.Fail($"timed out waiting until {what}; page text: {driver.FindElement(By.TagName("body")).Text}");
            Thread.Sleep(50);
        }
    }
}
