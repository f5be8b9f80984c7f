defmodule H2Flow.Scheduler do
  @moduledoc """
  The receive-side flow-control scheduler on its own: which WINDOW_UPDATE frames to send, for
  an HTTP/2 implementation other than `H2Flow.Engine` (the Cowboy stream handler runs it, next to
  its mirror of Cowboy's windows, in one NIF resource of its own).

  It is the same code the engine runs (`native/h2flow_core/src/scheduler.rs`), with the same
  rules: enforce the windows; credit only what the application consumed, so bytes received and
  not consumed never exceed the connection window; coalesce credits so one `flush/1` yields at
  most one connection credit and one per stream; release a credit at a threshold of the window
  (half by default) or when the peer is about to stall on a small remainder; never credit a
  stream whose peer finished sending, nor beyond its remaining content-length; no connection
  credit while what the peer has left covers every body it may still send.

  Adaptive growth is off here: the caller owns SETTINGS and PING.

      iex> {:ok, s} = H2Flow.Scheduler.new(initial_connection_window: 65_535, initial_stream_window: 65_535)
      iex> :ok = H2Flow.Scheduler.open_stream(s, 1, nil, false)
      iex> :ok = H2Flow.Scheduler.data(s, 1, 40_000, false)
      iex> H2Flow.Scheduler.flush(s)
      []
      iex> :ok = H2Flow.Scheduler.consume(s, 1, 40_000)
      iex> H2Flow.Scheduler.flush(s)
      [{0, 40000}, {1, 40000}]

  ## Options

    * `:initial_connection_window` (default 65,535): the connection window to maintain; at
      least `:peer_initial_connection_window`. When larger, `initial_credit/1` returns the
      WINDOW_UPDATE increment that raises the connection window to it.
    * `:initial_stream_window` (default 65,535): each stream's window (the
      SETTINGS_INITIAL_WINDOW_SIZE the peer was told).
    * `:peer_initial_connection_window` (default 65,535): the connection window the peer starts
      with (65,535 in HTTP/2).
    * `:window_update_threshold` (default 50): percent of the window at which credit is released.
    * `:max_frame_size` (default 16,384): our SETTINGS_MAX_FRAME_SIZE; a peer with less window
      than this left is about to stall.
  """

  alias H2Flow.Native

  @opaque t :: reference()

  @defaults %{
    initial_connection_window: 65_535,
    initial_stream_window: 65_535,
    peer_initial_connection_window: 65_535,
    window_update_threshold: 50,
    max_frame_size: 16_384
  }

  @ranges %{window_update_threshold: {1, 100}}

  @doc "Creates a scheduler. Unknown options and values out of range raise `ArgumentError`."
  @spec new(keyword()) :: {:ok, t()} | {:error, String.t()}
  def new(opts \\ []) do
    opts =
      Enum.reduce(opts, @defaults, fn {key, value}, acc ->
        unless Map.has_key?(@defaults, key),
          do: raise(ArgumentError, "unknown scheduler option #{inspect(key)}")

        {min, max} = Map.get(@ranges, key, {0, 2_147_483_647})

        unless is_integer(value) and value >= min and value <= max,
          do: raise(ArgumentError, "#{inspect(key)} must be an integer in #{min}..#{max}")

        Map.put(acc, key, value)
      end)

    Native.scheduler_new(opts)
  end

  @doc "The credit that raises the connection window to `:initial_connection_window` (0 if none)."
  @spec initial_credit(t()) :: non_neg_integer()
  def initial_credit(s), do: Native.scheduler_initial_credit(s)

  @doc "The peer opened a stream; `content_length` is its declared body length, if any."
  @spec open_stream(t(), pos_integer(), non_neg_integer() | nil, boolean()) :: :ok
  def open_stream(s, stream_id, content_length, end_stream?),
    do: Native.scheduler_open_stream(s, stream_id, content_length, end_stream?)

  @doc """
  A DATA frame arrived. `flow_len` counts what the frame costs against the windows (its whole
  payload, padding included); `data_len` (default `flow_len`) is what the application gets.
  """
  @spec data(t(), pos_integer(), non_neg_integer(), boolean(), non_neg_integer() | nil) ::
          :ok | {:error, H2Flow.Frame.reason()}
  def data(s, stream_id, flow_len, end_stream?, data_len \\ nil),
    do: Native.scheduler_data(s, stream_id, flow_len, data_len || flow_len, end_stream?)

  @doc """
  `data/5` for a DATA frame of `len` bytes without padding, then, unless `consumed` is `nil`,
  `consume/3` of that many bytes of the stream (0 says its reader waits, as for `consume/3`),
  then `flush/1`, in one call: `{data_result, credits}`. For a host that sees every DATA frame.
  """
  @spec data_and_flush(
          t(),
          pos_integer(),
          non_neg_integer(),
          boolean(),
          non_neg_integer() | nil
        ) ::
          {:ok | {:error, H2Flow.Frame.reason()}, [{non_neg_integer(), pos_integer()}]}
  def data_and_flush(s, stream_id, len, end_stream?, consumed),
    do: Native.scheduler_data_flush(s, stream_id, len, end_stream?, consumed)

  @doc "`consume/3`, then `flush/1`, in one call: the credits due."
  @spec consume_and_flush(t(), pos_integer(), non_neg_integer()) :: [
          {non_neg_integer(), pos_integer()}
        ]
  def consume_and_flush(s, stream_id, n), do: Native.scheduler_consume_flush(s, stream_id, n)

  @doc "The application consumed `n` bytes of the stream's body."
  @spec consume(t(), pos_integer(), non_neg_integer()) :: :ok
  def consume(s, stream_id, n), do: Native.scheduler_consume(s, stream_id, n)

  @doc "The peer finished sending on this stream (END_STREAM): no more credit for it."
  @spec end_stream(t(), pos_integer()) :: :ok
  def end_stream(s, stream_id), do: Native.scheduler_end_stream(s, stream_id)

  @doc "The stream is gone (reset, or done with unread bytes): its buffered bytes are released."
  @spec close_stream(t(), pos_integer()) :: :ok
  def close_stream(s, stream_id), do: Native.scheduler_close_stream(s, stream_id)

  @doc "The credits due now, `[{stream_id, increment}]`, the connection (stream 0) first."
  @spec flush(t()) :: [{non_neg_integer(), pos_integer()}]
  def flush(s), do: Native.scheduler_flush(s)

  @doc "What the peer may still send on a stream (`nil` when the stream is not tracked)."
  @spec stream_remaining(t(), pos_integer()) :: integer() | nil
  def stream_remaining(s, stream_id), do: Native.scheduler_stream_remaining(s, stream_id)

  @doc """
  Counters and state: `:buffered_bytes`, `:peak_buffered_bytes`, `:connection_window`,
  `:connection_remaining`, `:connection_window_updates`, `:stream_window_updates`,
  `:flushes_with_window_updates`, `:credited_bytes`, `:tracked_streams`.
  """
  @spec info(t()) :: map()
  def info(s), do: Native.scheduler_info(s)
end
