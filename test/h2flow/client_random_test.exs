defmodule H2Flow.ClientRandomTest do
  # Many processes make random requests on one connection with small windows and queues on
  # both sides and a server limit of 5 streams: whole and streamed responses, bodies as binaries
  # and as enumerables, pieces read then cancelled, resets, timeouts. Every outcome is checked
  # (bodies by hash), the connection process never crashes, and at the end nothing is left
  # open, queued or buffered. Seeded from ExUnit's seed.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers, only: [eventually: 1]

  alias H2Flow.Client
  alias H2Flow.Test.{ClientHandler, ClientHelpers}

  @moduletag :capture_log
  @moduletag timeout: 120_000

  test "random requests from 20 processes, small windows and queues everywhere" do
    server =
      H2Flow.Test.server!(
        handler: ClientHandler,
        max_concurrent_streams: 5,
        initial_stream_window: 16_384,
        max_stream_window: 65_536,
        max_send_queue: 4_096
      )

    client =
      H2Flow.Test.connect!(server,
        initial_stream_window: 20_000,
        max_stream_window: 40_000,
        initial_connection_window: 65_535,
        max_connection_window: 131_072,
        max_send_queue: 1_000,
        max_connection_send_queue: 8_000
      )

    pid = GenServer.whereis(client)
    seed = ExUnit.configuration()[:seed]

    tasks =
      for i <- 1..20 do
        Task.async(fn ->
          :rand.seed(:exsss, {seed, i, 19})
          for _ <- 1..25, do: op(client, :rand.uniform(8))
        end)
      end

    Enum.each(tasks, &Task.await(&1, 100_000))
    assert Process.alive?(pid)
    eventually(fn -> Client.stats(client).open_streams == 0 end)
    stats = Client.stats(client)
    assert stats.buffered_bytes == 0
    assert stats.queued_requests == 0
    assert stats.queued_send_bytes == 0
    assert stats.defences_triggered == 0
    assert H2Flow.stats(server).defences_triggered == 0
  end

  defp size, do: Enum.random([0, 1, 100, 16_384, 50_000, 300_000])

  defp op(client, 1) do
    body = size() |> ClientHelpers.pattern() |> Enum.join()
    assert {:ok, %{status: 200, body: ^body}} = Client.request(client, "POST", "/echo", [], body)
  end

  defp op(client, 2) do
    n = size()
    hash = ClientHelpers.pattern_hash(n)
    {:ok, resp} = Client.stream(client, "PUT", "/sha256", [], ClientHelpers.pattern(n))
    assert {^hash, _} = ClientHelpers.collect(resp)
  end

  defp op(client, 3) do
    {n, max} = {size(), size()}

    case Client.request(client, "GET", "/bytes/#{n}", [], nil, max_body: max) do
      {:ok, %{body: body}} ->
        assert n <= max and ClientHelpers.sha256(body) == ClientHelpers.pattern_hash(n)

      {:error, {:body_too_large, ^max}} ->
        assert n > max
    end
  end

  defp op(client, 4) do
    n = size()
    hash = ClientHelpers.pattern_hash(n)
    {:ok, resp} = Client.stream(client, "GET", "/bytes/#{n}")
    assert {^n, ^hash, _, _} = ClientHelpers.read_all(resp)
  end

  defp op(client, 5) do
    # A few pieces, then cancelled.
    {:ok, resp} = Client.stream(client, "GET", "/bytes/1000000")
    resp = Enum.reduce(1..Enum.random(1..3), resp, fn _, r -> elem(Client.read_body(r), 2) end)
    :ok = Client.cancel(resp)
  end

  defp op(client, 6) do
    code = Enum.random([:cancel, :refused_stream, :internal_error])
    assert {:error, {:stream_reset, ^code}} = Client.request(client, "GET", "/reset/#{code}")
  end

  defp op(client, 7) do
    assert {:error, :timeout} =
             Client.request(client, "POST", "/sleep/200", [], :binary.copy("t", 30_000),
               timeout: 20
             )
  end

  defp op(client, 8) do
    assert {:error, {:stream_reset, :internal_error}} = Client.request(client, "GET", "/crash")
  end
end
