using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Adp.Serving.Web;

/// <summary>The demonstration page at /: drop an image, watch the noisy start and each purification step, read the
/// defended prediction. One self-contained HTML file (no CDN), embedded in the assembly.</summary>
public static class WebPage
{
    private static readonly Lazy<string> Html = new(() =>
    {
        using var s = typeof(WebPage).Assembly.GetManifestResourceStream("adp.web.index.html")
                      ?? throw new InvalidOperationException("the embedded page adp.web.index.html is missing");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    });

    public static void MapWebPage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Results.Content(Html.Value, "text/html; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/index.html", () => Results.Redirect("/")).ExcludeFromDescription();
    }
}
