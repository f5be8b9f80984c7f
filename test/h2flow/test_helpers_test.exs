defmodule H2Flow.TestHelpersTest do
  # H2Flow.Test, as a user's ExUnit suite uses it: a handler over h2c and over TLS, a Plug
  # (with PLUG_EBIN), and the separate steps.
  use ExUnit.Case, async: true

  alias H2Flow.Client
  alias H2Flow.Test.ClientHandler

  defmodule HelloPlug do
    @moduledoc false
    # A module plug without Plug at compile time (Plug.Conn is called only when it runs).
    @compile {:no_warn_undefined, [Plug.Conn]}
    def init(opts), do: opts

    def call(conn, opts),
      do: Plug.Conn.send_resp(conn, 200, "hello from #{conn.request_path} #{opts[:who]}")
  end

  test "a handler over h2c and TLS" do
    client = H2Flow.Test.client!(handler: ClientHandler)
    assert {:ok, %{status: 200, body: "slept"}} = Client.request(client, "GET", "/sleep/0")

    tls = H2Flow.Test.client!(handler: ClientHandler, transport: :tls)
    assert {:ok, %{status: 200, body: "ok"}} = Client.request(tls, "POST", "/echo", [], "ok")
  end

  @tag :plug
  test "a Plug" do
    client = H2Flow.Test.client!(plug: {HelloPlug, who: "h2flow"})

    assert {:ok, %{status: 200, body: "hello from /a h2flow"}} =
             Client.request(client, "GET", "/a")
  end

  test "the steps apart: server!/1, url/1, connect!/2" do
    server = H2Flow.Test.server!(handler: ClientHandler, max_concurrent_streams: 7)
    assert H2Flow.Test.url(server) =~ ~r"^http://127\.0\.0\.1:\d+$"
    client = H2Flow.Test.connect!(server, max_concurrent_streams: 2)
    assert {:ok, %{status: 404}} = Client.request(client, "GET", "/")
    assert H2Flow.stats(server).connections == 1

    tls = H2Flow.Test.server!(handler: ClientHandler, transport: :tls)
    assert H2Flow.Test.url(tls) =~ ~r"^https://localhost:\d+$"
    assert {:ok, %{status: 404}} = Client.request(H2Flow.Test.connect!(tls), "GET", "/")
  end
end
